"""AgeDB-DIR, ordinal entropy: L1 loss + weight · (tightness − diversity) on the encoder's features.

needylove/OrdinalEntropy `README.md`, "Experiments on the Age Estimation": the term of
`AgeEstimation/OrdinalEntropy.py` added with weight 1 (`loss = loss + oe_loss`) to the
YyzHarry/imbalanced-regression `agedb-dir` baseline, whose recipe this keeps: batch 256, Adam lr 1e-3,
90 epochs, ×0.1 at 60 and 80, no re-weighting. The README gives no MAE. ResNet-50 from scratch, 224²
inputs; the rest of the recipe in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/agedb_ordinal_entropy.py --workdir=/tmp/agedb_ordinal_entropy \
    --config.data.data_dir=/data/agedb

`--config=configs/agedb_ordinal_entropy.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

import ml_collections

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.batch_size = 256
  c.optimizer.lr = 1e-3
  c.regularizers = ml_collections.ConfigDict({"ordinal_entropy": {"name": "ordinal_entropy", "weight": 1.0}})
  return age_common.for_arg(c, arg)
