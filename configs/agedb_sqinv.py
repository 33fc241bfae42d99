"""AgeDB-DIR, SQINV: L1 loss weighted by 1/sqrt(n_age) (mean weight 1).

Reference: DIR paper Table 2 (not re-read): MAE 7.81 / 7.16 / 8.80 / 11.20.
ResNet-50 from scratch, 224² inputs, batch 256, Adam; recipe and deviations in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/agedb_sqinv.py --workdir=/tmp/agedb_sqinv \
    --config.data.data_dir=/data/agedb

`--config=configs/agedb_sqinv.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.reweight.method = "sqrt_inv"  # SQINV: weights ∝ 1/sqrt(n_age), mean 1
  return age_common.for_arg(c, arg)
