"""IMDB-WIKI-DIR, Vanilla: L1 loss, no re-weighting (stage 1; also the base model of the RRT / Balanced-MSE runs).

Reference: DIR paper Table 1 (not re-read): MAE 8.06 / 7.23 / 15.12 / 26.33; Balanced-MSE README (balanced metric): bMAE 13.923 / 7.323 / 15.925 / 32.778.
ResNet-50 from scratch, 224² inputs, batch 256, Adam; recipe and deviations in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/imdb_vanilla.py --workdir=/tmp/imdb_vanilla \
    --config.data.data_dir=/data/imdb

`--config=configs/imdb_vanilla.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("imdb")
  return age_common.for_arg(c, arg)
