"""AgeDB-DIR, ConR: L1 loss + β·ConR over two augmented views of each face (no re-weighting).

Hyper-parameters of BorealisAI/ConR `agedb-dir/README.md` and `train.py` defaults: ω (`-w`) 1, β (`--beta`)
4, pushing scale e (`-e`) 0.01, τ 0.07 (the value `agedb-dir/loss.py` hard-codes, whatever `-t` says), batch
64, Adam lr 2.5e-4, 120 epochs, ×0.1 at 60 and 80. The README gives no MAE. Two views instead of the
reference's three forward passes: docs/deviations.md row 48. ResNet-50 from scratch, 224² inputs;
the rest of the recipe in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/agedb_conr.py --workdir=/tmp/agedb_conr \
    --config.data.data_dir=/data/agedb

`--config=configs/agedb_conr.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

import ml_collections

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.batch_size = 64
  c.num_epochs = 120
  c.optimizer.lr = 2.5e-4
  c.data.two_views = True  # ConR contrasts two independently augmented views of every image
  c.regularizers = ml_collections.ConfigDict({"conr": {
    "name": "conr", "weight": 4.0, "window": 1.0, "push_scale": 0.01, "temperature": 0.07, "variant": "age"}})
  return age_common.for_arg(c, arg)
