"""AgeDB-DIR, SQINV + RankSim: square-root inverse-frequency weights on the L1 loss + γ·RankSim.

BorealisAI/ranksim-imbalanced-regression `agedb-dir/README.md`, "RankSim and square-root frequency inverse": `--reweight sqrt_inv`, γ 100, λ 2, batch 64,
lr 2.5e-4; 90 epochs, ×0.1 at 60 and 80 (`train.py` defaults). README pretrained model: MAE all 6.91
(its best overall). RankSim itself is unweighted (the weights act on the regression loss only).
ResNet-50 from scratch, 224² inputs; the rest of the recipe in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/agedb_sqinv_ranksim.py --workdir=/tmp/agedb_sqinv_ranksim \
    --config.data.data_dir=/data/agedb

`--config=configs/agedb_sqinv_ranksim.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

import ml_collections

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.reweight.method = "sqrt_inv"  # SQINV: weights ∝ 1/sqrt(n_age), mean 1
  c.batch_size = 64
  c.optimizer.lr = 2.5e-4
  c.regularizers = ml_collections.ConfigDict({"ranksim": {"name": "ranksim", "weight": 100.0, "interpolation": 2.0}})
  return age_common.for_arg(c, arg)
