"""AgeDB-DIR, Rank-N-Contrast stage 2: a linear head trained with L1 on the frozen stage-1 encoder.

kaiwenzha/Rank-N-Contrast `README.md` / `main_linear.py` defaults: batch 64, 100 epochs, SGD lr 0.05,
momentum 0.9, no weight decay, cosine decay, selection on the best validation MAE. The encoder's
parameters are frozen (`train_only = "head"`, the RRT mechanism); its BatchNorm statistics still move, where
the reference runs it in eval mode: docs/deviations.md row 54. Reference MAE (paper, overall only): 6.14.

Stage 2: needs a finished `configs/agedb_rnc.py` run in --config.init_from.

Run:
  python -m dirjax.main --config=configs/agedb_rnc_linear.py --workdir=/tmp/agedb_rnc_linear \
    --config.data.data_dir=/data/agedb --config.init_from=/tmp/agedb_rnc

`--config=configs/agedb_rnc_linear.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

import ml_collections

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.model = ml_collections.ConfigDict({"name": "resnet18", "out_dim": 1, "bn_groups": 1})
  c.batch_size = 64
  c.num_epochs = 100
  c.optimizer = ml_collections.ConfigDict({
    "name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "schedule": "cosine"})
  c.init_from = age_common.INIT_FROM_REQUIRED
  c.train_only = "head"
  return age_common.for_arg(c, arg)
