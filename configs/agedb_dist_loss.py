"""AgeDB-DIR, Dist Loss (Nie, Tang & Hong, ICLR 2025), one stage: inverse-weighted L1 plus the
distribution term λ·mean w·|soft_sort(ŷ) − t| against the training-label KDE's pseudo-labels.

Reference: Ngk03/DIR-Dist-Loss `agedb-dir/train.py` defaults (the script run without stage flags):
batch 512, Adam 1e-3 (no weight decay), 90 epochs, ×0.1 at 60 and 80, `--loss l1`,
`--reweight inverse` (clip 5..1000, mean 1), `--distribution_loss_term_weight 1`,
`--regularization_strength 0.1`, `--bw_method 0.5` (a factor on the label std), labels 0..120 on a
unit grid, selection on balanced val MAE. The paper's headline rows are the two-stage recipe
(`configs/agedb_dist_loss_rrt.py`). ResNet-50 from scratch; recipe in `configs/age_common.py`.
Deviations: docs/deviations.md rows 62–64.

Run:
  python -m dirjax.main --config=configs/agedb_dist_loss.py --workdir=/tmp/agedb_dist_loss \
    --config.data.data_dir=/data/agedb

`--config=configs/agedb_dist_loss.py:smoke` is the one-step version the tests run on a tiny fixture.
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
  c.eval.balanced_metric = True  # selection on balanced val MAE (no --not_balanced_metric)
  return age_common.for_arg(c, arg)
