"""AgeDB-DIR, Dist Loss in the RRT-style stage 2 (the paper's rows): on a finished stage-1 run, the
linear head is re-initialised and trained alone with inverse-weighted L1 + the Dist Loss term.

Reference: Ngk03/DIR-Dist-Loss README stage 2, `agedb-dir/train.py --pretrained <stage-1>
--retrain_fc --reweight inverse`: every tensor except the regressor is loaded and frozen, 90 epochs,
Adam 1e-3, ×0.1 at 60 and 80, batch 512, λ 1, ε 0.1, KDE bandwidth factor 0.5, labels 0..120,
selection on balanced val MAE; BatchNorm stays in training mode (its statistics keep moving).
The reference's stage 1 is `--distribution_loss_term_weight 0 --not_balanced_metric`, i.e.
inverse-weighted L1 at batch 512 (docs/deviations.md row 64: any finished run may be the stage 1
here, e.g. `configs/agedb_vanilla.py`). ResNet-50; recipe in `configs/age_common.py`.

Stage 2: needs a finished stage-1 run in --config.init_from.

Run:
  python -m dirjax.main --config=configs/agedb_dist_loss_rrt.py --workdir=/tmp/agedb_dist_loss_rrt \
    --config.data.data_dir=/data/agedb --config.init_from=/tmp/agedb_vanilla

`--config=configs/agedb_dist_loss_rrt.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

import ml_collections

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.batch_size = 512
  c.reweight.method = "inverse"  # --reweight inverse: 1/clip(n_age, 5, 1000), mean 1
  c.regularizers = ml_collections.ConfigDict({"dist": {
    "name": "dist_loss", "weight": 1.0, "regularization_strength": 0.1, "bw_method": 0.5,
    "min_label": 0.0, "max_label": 120.0, "step": 1.0, "loss": "l1"}})
  c.eval.balanced_metric = True
  # --retrain_fc: re-initialise the linear head and train only it.
  c.init_from = age_common.INIT_FROM_REQUIRED
  c.train_only = "head"
  return age_common.for_arg(c, arg)
