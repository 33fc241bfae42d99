"""IMDB-WIKI-DIR, BSAM (Liu et al., ICCV 2025): a sharpness-aware step whose ascent and descent
passes both use the inverse-√-frequency weighted L1.

Reference: manmanjun/BSAM_for_Imbalanced_Regression README (IMDB-WIKI: ρ 0.05) and
`imdb-wiki/train.py` defaults: ResNet-18 from scratch, batch 256, 400 epochs, SGD momentum 0.9,
lr 0.2, weight decay 1e-4, cosine per epoch, weights 1/√n_age (not normalised).
Our SQINV weights have mean 1, so lr and weight decay are rescaled by the reference's mean weight
m̄ = Σ_a √n_a / N over the training faces (lr 0.2·m̄, wd 1e-4/m̄: the same SGD trajectory).

m̄ = 0.017646 for IMDB-WIKI-DIR: the reference ships its per-age table `imdb-wiki/imdb_sqrt_weight.pt`
(√n_a of the YyzHarry/imbalanced-regression `imdb_wiki.csv` training split, from that repository's
`imdb-wiki-dir/datasets.py` `_prepare_weights`: ages ≥ 120 counted in bin 120). Its squares are the
histogram n_0..n_120 (3, 13, 17, …, 7149 faces at age 31, …, 15 in bin 120) with N = Σ n_a =
191,509, the published training size, and Σ_a √n_a / N = 0.017646 (`tests/test_dist_loss_bsam_configs.py`
re-derives it from that histogram). AgeDB-DIR's 0.0765 is 4.3× larger. Deviations: docs/deviations.md
rows 65–66.

Run:
  python -m dirjax.main --config=configs/imdb_bsam.py --workdir=/tmp/imdb_bsam \
    --config.data.data_dir=/data/imdb

`--config=configs/imdb_bsam.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common

MEAN_REFERENCE_WEIGHT = 0.017646  # mean of 1/√n_age over the 191,509 IMDB-WIKI-DIR training faces (see above)


def get_config(arg: str = ""):
  c = age_common.base_config("imdb")
  c.model.name = "resnet18"
  c.num_epochs = 400
  c.reweight.method = "sqrt_inv"  # 1/√n_age, here with mean 1
  c.optimizer.update({"name": "sgd", "lr": 0.2 * MEAN_REFERENCE_WEIGHT, "momentum": 0.9,
                      "weight_decay": 1e-4 / MEAN_REFERENCE_WEIGHT, "schedule": "cosine", "sam_rho": 0.05})
  return age_common.for_arg(c, arg)
