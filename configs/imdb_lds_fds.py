"""IMDB-WIKI-DIR, SQINV + LDS + FDS: both, gaussian ks 5, σ 2.

Reference: imdb-wiki-dir/README.md (reproduced model): MAE 7.68 / 7.07 / 12.79 / 21.85.
ResNet-50 from scratch, 224² inputs, batch 256, Adam; recipe and deviations in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/imdb_lds_fds.py --workdir=/tmp/imdb_lds_fds \
    --config.data.data_dir=/data/imdb

`--config=configs/imdb_lds_fds.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("imdb")
  c.reweight.method = "sqrt_inv"  # SQINV: weights ∝ 1/sqrt(n_age), mean 1
  c.reweight.lds = True  # LDS: smooth the age histogram with the base kernel (gaussian ks 5, σ 2)
  c.fds.enabled = True  # FDS: smooth the feature statistics (gaussian ks 5, σ 2)
  return age_common.for_arg(c, arg)
