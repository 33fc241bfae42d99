"""AgeDB-DIR, BSAM (Liu et al., ICCV 2025): a sharpness-aware step whose ascent and descent passes
both use the inverse-√-frequency weighted L1.

Reference: manmanjun/BSAM_for_Imbalanced_Regression README (AgeDB: ρ 0.2) and `agedb/train.py`
defaults: ResNet-18 from scratch, batch 256, 400 epochs, SGD momentum 0.9, lr 0.2, weight decay
1e-4, cosine per epoch, weights 1/√n_age (not normalised), selection on val MAE.
Our SQINV weights have mean 1, the reference's mean 0.0765 over the AgeDB-DIR training faces
(computed from the split), so lr and weight decay are rescaled to give the same SGD trajectory:
lr 0.2·0.0765, wd 1e-4/0.0765 (ρ is scale-free). Deviations (schedule floor, augmentation):
docs/deviations.md rows 65–66. Recipe otherwise `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/agedb_bsam.py --workdir=/tmp/agedb_bsam \
    --config.data.data_dir=/data/agedb

`--config=configs/agedb_bsam.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common

MEAN_REFERENCE_WEIGHT = 0.0765  # mean of 1/√n_age over the 12,208 AgeDB-DIR training faces


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.model.name = "resnet18"
  c.num_epochs = 400
  c.reweight.method = "sqrt_inv"  # 1/√n_age, here with mean 1
  c.optimizer.update({"name": "sgd", "lr": 0.2 * MEAN_REFERENCE_WEIGHT, "momentum": 0.9,
                      "weight_decay": 1e-4 / MEAN_REFERENCE_WEIGHT, "schedule": "cosine", "sam_rho": 0.2})
  return age_common.for_arg(c, arg)
