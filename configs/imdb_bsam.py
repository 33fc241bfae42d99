"""IMDB-WIKI-DIR, BSAM (Liu et al., ICCV 2025): a sharpness-aware step whose ascent and descent
passes both use the inverse-√-frequency weighted L1.

Reference: manmanjun/BSAM_for_Imbalanced_Regression README (IMDB-WIKI: ρ 0.05) and
`imdb-wiki/train.py` defaults (the AgeDB code): ResNet-18 from scratch, batch 256, 400 epochs, SGD
momentum 0.9, lr 0.2, weight decay 1e-4, cosine per epoch, weights 1/√n_age (not normalised).
Our SQINV weights have mean 1, so lr and weight decay are rescaled by the reference's mean weight
m̄ (lr 0.2·m̄, wd 1e-4/m̄). m̄ of the IMDB-WIKI-DIR split was not measured here (the split is
built by `scripts/create_imdb_wiki.py`): AgeDB-DIR's 0.0765 stands in; replace it with
Σ_a √n_a / N of your training split. Deviations: docs/deviations.md rows 65–66.

Run:
  python -m dirjax.main --config=configs/imdb_bsam.py --workdir=/tmp/imdb_bsam \
    --config.data.data_dir=/data/imdb

`--config=configs/imdb_bsam.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common

MEAN_REFERENCE_WEIGHT = 0.0765  # AgeDB-DIR's mean of 1/√n_age, standing in for IMDB-WIKI-DIR's (see above)


def get_config(arg: str = ""):
  c = age_common.base_config("imdb")
  c.model.name = "resnet18"
  c.num_epochs = 400
  c.reweight.method = "sqrt_inv"  # 1/√n_age, here with mean 1
  c.optimizer.update({"name": "sgd", "lr": 0.2 * MEAN_REFERENCE_WEIGHT, "momentum": 0.9,
                      "weight_decay": 1e-4 / MEAN_REFERENCE_WEIGHT, "schedule": "cosine", "sam_rho": 0.05})
  return age_common.for_arg(c, arg)
