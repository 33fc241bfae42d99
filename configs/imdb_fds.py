"""IMDB-WIKI-DIR, SQINV + FDS: feature smoothing (gaussian ks 5, σ 2, momentum 0.9, start_update 0, start_smooth 1) with SQINV weights, as the README's 'base method SQINV' table (its FDS command omits --reweight).

Reference: imdb-wiki-dir/README.md (reproduced model): MAE 7.66 / 7.06 / 12.60 / 22.37.
ResNet-50 from scratch, 224² inputs, batch 256, Adam; recipe and deviations in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/imdb_fds.py --workdir=/tmp/imdb_fds \
    --config.data.data_dir=/data/imdb

`--config=configs/imdb_fds.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("imdb")
  c.reweight.method = "sqrt_inv"  # SQINV: weights ∝ 1/sqrt(n_age), mean 1
  c.fds.enabled = True  # FDS: smooth the feature statistics (gaussian ks 5, σ 2)
  return age_common.for_arg(c, arg)
