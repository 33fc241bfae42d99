"""AgeDB-DIR, RRT: stage 2 on a finished vanilla run: head re-initialised and trained alone with SQINV weights, same 90-epoch schedule (BatchNorm statistics still updated, docs/deviations.md R8).

Reference: DIR paper Table 2 (not re-read): MAE 7.74 / 6.98 / 8.79 / 11.99.
ResNet-50 from scratch, 224² inputs, batch 256, Adam; recipe and deviations in `configs/age_common.py`.

Stage 2: needs a finished `configs/agedb_vanilla.py` run in --config.init_from.

Run:
  python -m dirjax.main --config=configs/agedb_rrt.py --workdir=/tmp/agedb_rrt \
    --config.data.data_dir=/data/agedb --config.init_from=/tmp/agedb_vanilla

`--config=configs/agedb_rrt.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  return age_common.get_config("agedb", "rrt", arg)
