"""AgeDB-DIR, SQINV + LDS + FDS: both, gaussian ks 5, σ 2.

Reference: agedb-dir/README.md (reproduced model): MAE 7.47 / 6.91 / 8.26 / 10.55.
ResNet-50 from scratch, 224² inputs, batch 256, Adam; recipe and deviations in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/agedb_lds_fds.py --workdir=/tmp/agedb_lds_fds \
    --config.data.data_dir=/data/agedb

`--config=configs/agedb_lds_fds.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.reweight.method = "sqrt_inv"  # SQINV: weights ∝ 1/sqrt(n_age), mean 1
  c.reweight.lds = True  # LDS: smooth the age histogram with the base kernel (gaussian ks 5, σ 2)
  c.fds.enabled = True  # FDS: smooth the feature statistics (gaussian ks 5, σ 2)
  return age_common.for_arg(c, arg)
