"""IMDB-WIKI-DIR, SMOTER: L1 on a training set resampled by SMOTER (k 5, relevance threshold 0.5).

Reference: DIR paper Table 1 (not re-read): MAE 8.14 / 7.42 / 14.15 / 25.28.
Synthetic faces are pixel-space interpolations of training faces
(neighbours on 16² thumbnails; `dirjax/data/age.py`, `dirjax/data/smogn.py`); recipe in
`configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/imdb_smoter.py --workdir=/tmp/imdb_smoter \
    --config.data.data_dir=/data/imdb

`--config=configs/imdb_smoter.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("imdb")
  c.data.resample.method = "smoter"  # plain L1 on the resampled training set (DIR paper Tables 1–2)
  return age_common.for_arg(c, arg)
