"""AgeDB-DIR, SMOGN: L1 on a training set resampled by SMOGN (k 5, relevance threshold 0.5, pert 0.02).

Reference: DIR paper Table 2 (not re-read): MAE 8.26 / 7.64 / 9.01 / 12.09.
Synthetic faces are pixel-space interpolations or Gaussian perturbations of training faces
(neighbours on 16² thumbnails; `dirjax/data/age.py`, `dirjax/data/smogn.py`); recipe in
`configs/age_common.py`.

What the box-plot relevance makes of AgeDB's ages: `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/agedb_smogn.py --workdir=/tmp/agedb_smogn \
    --config.data.data_dir=/data/agedb

`--config=configs/agedb_smogn.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.data.resample.method = "smogn"  # plain L1 on the resampled training set (DIR paper Tables 1–2)
  return age_common.for_arg(c, arg)
