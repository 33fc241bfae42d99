"""AgeDB-DIR, SMOTER: L1 on a training set resampled by SMOTER (k 5, relevance threshold 0.5).

Reference: DIR paper Table 2 (not re-read): MAE 8.16 / 7.39 / 8.65 / 12.28.
Synthetic faces are pixel-space interpolations of training faces
(neighbours on 16² thumbnails; `dirjax/data/age.py`, `dirjax/data/smogn.py`); recipe in
`configs/age_common.py`.

On AgeDB-DIR's training ages the box-plot relevance (control points (1, 0), (43, 0), (90, 1)) marks
ages ≥ 67 as rare and nothing at the young end (no low box-plot outliers), so "balance" sampling
gives 6,104 faces each to ages 1–66 (under-sampled from 10,842) and 67–101 (grown from 1,366):
the smogn package's defaults (the paper does not give its settings). Building the plan takes a few seconds.

Run:
  python -m dirjax.main --config=configs/agedb_smoter.py --workdir=/tmp/agedb_smoter \
    --config.data.data_dir=/data/agedb

`--config=configs/agedb_smoter.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  return age_common.get_config("agedb", "smoter", arg)
