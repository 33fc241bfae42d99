"""AgeDB-DIR, UVOTE: two heads (r = 0: unweighted, r = 1: clipped inverse frequency), Laplace NLL with the
dynamic loss, prediction from the head with the smaller predicted scale (`dirjax.uvote`).

Reference: SherryJYC/UVOTE README (AgeDB-DIR: `train_gradual.py --loss l1nll --num_branch 2 --dynamic_loss`)
and `agedb-dir/train_gradual.py` defaults: batch 64, Adam 1e-3 (no weight decay), 90 epochs, ×0.1 at 60
and 80; log-scale clip [−5, 5] (`agedb-dir/loss.py`); head 0 always weight 1. Paper: GCPR 2024 (arXiv
2305.15178), AgeDB-DIR table. ResNet-50 from scratch, 224² inputs;
recipe and its deviations in `configs/age_common.py`, UVOTE's in docs/deviations.md rows 55–58.

Run:
  python -m dirjax.main --config=configs/agedb_uvote.py --workdir=/tmp/agedb_uvote \
    --config.data.data_dir=/data/agedb

`--config=configs/agedb_uvote.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

import ml_collections

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.batch_size = 64  # train_gradual.py default
  c.head = ml_collections.ConfigDict({"name": "uvote", "num_heads": 2})  # --num_branch 2: r = (0, 1)
  c.optimizer.lr_scales = {"head/log_scale": 0.1}  # train_gradual.py L207–215: the logvar layers at 0.1·lr
  c.loss = ml_collections.ConfigDict({
    "name": "uvote", "dynamic": True, "head0_dynamic": False, "log_scale_clip": (-5.0, 5.0)})
  return age_common.for_arg(c, arg)
