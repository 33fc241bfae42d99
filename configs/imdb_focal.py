"""IMDB-WIKI-DIR, Focal-R: focal L1 loss, |e|·(2·sigmoid(0.2·|e|) − 1)^1.

Reference: DIR paper Table 1 (not re-read): MAE 7.97 / 7.12 / 15.14 / 26.96.
ResNet-50 from scratch, 224² inputs, batch 256, Adam; recipe and deviations in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/imdb_focal.py --workdir=/tmp/imdb_focal \
    --config.data.data_dir=/data/imdb

`--config=configs/imdb_focal.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("imdb")
  c.loss.name = "focal_l1"
  c.loss.kwargs = {"activate": "sigmoid", "beta": 0.2, "gamma": 1.0}
  return age_common.for_arg(c, arg)
