"""IMDB-WIKI-DIR, SQINV + LDS: sqrt-inverse weights of the gaussian-smoothed (ks 5, σ 2) label histogram.

Reference: imdb-wiki-dir/README.md (reproduced model): MAE 7.87 / 7.31 / 12.45 / 22.60.
ResNet-50 from scratch, 224² inputs, batch 256, Adam; recipe and deviations in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/imdb_lds.py --workdir=/tmp/imdb_lds \
    --config.data.data_dir=/data/imdb

`--config=configs/imdb_lds.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("imdb")
  c.reweight.method = "sqrt_inv"  # SQINV: weights ∝ 1/sqrt(n_age), mean 1
  c.reweight.lds = True  # LDS: smooth the age histogram with the base kernel (gaussian ks 5, σ 2)
  return age_common.for_arg(c, arg)
