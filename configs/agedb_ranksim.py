"""AgeDB-DIR, RankSim: L1 loss + γ·RankSim on the L2-normalised features (no re-weighting).

BorealisAI/ranksim-imbalanced-regression `agedb-dir/README.md`, "Train a model with RankSim": γ (`--regularization_weight`) 100, λ
(`--interpolation_lambda`) 2, batch 64, lr 2.5e-4 (the README reports its AgeDB results at this batch
and rate); 90 epochs, ×0.1 at 60 and 80 (`train.py` defaults). The README gives no MAE for this row.
ResNet-50 from scratch, 224² inputs; the rest of the recipe in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/agedb_ranksim.py --workdir=/tmp/agedb_ranksim \
    --config.data.data_dir=/data/agedb

`--config=configs/agedb_ranksim.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

import ml_collections

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.batch_size = 64
  c.optimizer.lr = 2.5e-4
  c.regularizers = ml_collections.ConfigDict({"ranksim": {"name": "ranksim", "weight": 100.0, "interpolation": 2.0}})
  return age_common.for_arg(c, arg)
