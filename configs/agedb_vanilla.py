"""AgeDB-DIR, Vanilla: L1 loss, no re-weighting (stage 1; also the base model of the RRT / Balanced-MSE runs).

Reference: DIR paper Table 2 (not re-read): MAE all 7.77, many 6.62, medium 9.55, few 13.67.
ResNet-50 from scratch, 224² inputs, batch 256, Adam; recipe and deviations in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/agedb_vanilla.py --workdir=/tmp/agedb_vanilla \
    --config.data.data_dir=/data/agedb

`--config=configs/agedb_vanilla.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  return age_common.for_arg(c, arg)
