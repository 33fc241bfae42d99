"""AgeDB-DIR, Rank-N-Contrast stage 1: the ResNet-18 encoder pre-trained with the RnC loss alone.

kaiwenzha/Rank-N-Contrast `README.md` / `main_rnc.py` defaults: ResNet-18, two augmented views, τ
(`--temp`) 2, batch 256, 400 epochs, SGD lr 0.5, momentum 0.9, weight decay 1e-4, cosine decay. No
regression loss (`loss.name = "none"`; the head stays untrained) and no validation: the run evaluates
once, after the last epoch, so its "best" checkpoint is the final encoder that stage 2
(`configs/agedb_rnc_linear.py`) loads. Deviations (augmentation, cosine floor, BatchNorm batches):
docs/deviations.md rows 52–54. The RnC paper's AgeDB MAE (ResNet-18, linear probe): 6.14 (not re-read).

Run:
  python -m dirjax.main --config=configs/agedb_rnc.py --workdir=/tmp/agedb_rnc \
    --config.data.data_dir=/data/agedb

`--config=configs/agedb_rnc.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

import ml_collections

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.model = ml_collections.ConfigDict({"name": "resnet18", "out_dim": 1, "bn_groups": 1})
  c.batch_size = 256
  c.num_epochs = 400
  c.optimizer = ml_collections.ConfigDict({
    "name": "sgd", "lr": 0.5, "momentum": 0.9, "weight_decay": 1e-4, "schedule": "cosine"})
  c.loss.name = "none"  # stage 1 trains the encoder with RnC only
  c.data.two_views = True
  c.regularizers = ml_collections.ConfigDict({"rnc": {"name": "rank_n_contrast", "weight": 1.0, "temperature": 2.0}})
  c.eval.every_epochs = c.num_epochs  # no validation: "best" is the last epoch's encoder
  return age_common.for_arg(c, arg)
