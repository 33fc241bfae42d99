"""IMDB-WIKI-DIR, SQINV + RankSim: square-root inverse-frequency weights on the L1 loss + γ·RankSim.

BorealisAI/ranksim-imbalanced-regression `imdb-wiki-dir/README.md`, "RankSim and square-root frequency inverse (SQINV)": `--reweight sqrt_inv`, γ 100, λ 2, batch
256, lr 1e-3; 90 epochs, ×0.1 at 60 and 80 (`train.py` defaults). README pretrained model: MAE all 7.42.
ResNet-50 from scratch, 224² inputs; the rest of the recipe in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/imdb_sqinv_ranksim.py --workdir=/tmp/imdb_sqinv_ranksim \
    --config.data.data_dir=/data/imdb_wiki

`--config=configs/imdb_sqinv_ranksim.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

import ml_collections

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("imdb")
  c.reweight.method = "sqrt_inv"  # SQINV: weights ∝ 1/sqrt(n_age), mean 1
  c.batch_size = 256
  c.optimizer.lr = 1e-3
  c.regularizers = ml_collections.ConfigDict({"ranksim": {"name": "ranksim", "weight": 100.0, "interpolation": 2.0}})
  return age_common.for_arg(c, arg)
