"""IMDB-WIKI-DIR, UVOTE: three heads (r = 0, ½, 1), Laplace NLL with the dynamic loss, prediction from
the head with the smallest predicted scale (`dirjax.uvote`).

Reference: SherryJYC/UVOTE README (IMDB-WIKI-DIR: `train_gradual.py --loss l1nll --num_branch 3
--dynamic_loss`) and `imdb-wiki-dir/train_gradual.py` defaults: batch 256, Adam 1e-3 (no weight decay), 90
epochs, ×0.1 at 60 and 80; log-scale clip [−5, 10] (`imdb-wiki-dir/loss.py` L10) and head 0 scaled by
α_e = 1 − (e/E)² (L370). Paper: GCPR 2024 (arXiv 2305.15178), IMDB-WIKI-DIR table.
ResNet-50 from scratch, 224² inputs; recipe in `configs/age_common.py`, UVOTE's deviations in
docs/deviations.md rows 55–58.

Run:
  python -m dirjax.main --config=configs/imdb_uvote.py --workdir=/tmp/imdb_uvote \
    --config.data.data_dir=/data/imdb_wiki

`--config=configs/imdb_uvote.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

import ml_collections

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("imdb")
  c.head = ml_collections.ConfigDict({"name": "uvote", "num_heads": 3})  # --num_branch 3: r = (0, ½, 1)
  c.optimizer.lr_scales = {"head/log_scale": 0.1}  # train_gradual.py L207–215: the logvar layers at 0.1·lr
  c.loss = ml_collections.ConfigDict({
    "name": "uvote", "dynamic": True, "head0_dynamic": True, "log_scale_clip": (-5.0, 10.0)})
  return age_common.for_arg(c, arg)
