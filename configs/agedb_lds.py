"""AgeDB-DIR, SQINV + LDS: sqrt-inverse weights of the gaussian-smoothed (ks 5, σ 2) label histogram.

Reference: agedb-dir/README.md (reproduced model): MAE 7.67 / 6.98 / 8.86 / 10.89.
ResNet-50 from scratch, 224² inputs, batch 256, Adam; recipe and deviations in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/agedb_lds.py --workdir=/tmp/agedb_lds \
    --config.data.data_dir=/data/agedb

`--config=configs/agedb_lds.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.reweight.method = "sqrt_inv"  # SQINV: weights ∝ 1/sqrt(n_age), mean 1
  c.reweight.lds = True  # LDS: smooth the age histogram with the base kernel (gaussian ks 5, σ 2)
  return age_common.for_arg(c, arg)
