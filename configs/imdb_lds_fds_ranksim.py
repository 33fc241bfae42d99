"""IMDB-WIKI-DIR, SQINV + LDS + FDS + RankSim: the DIR methods (gaussian ks 5, σ 2) with γ·RankSim.

BorealisAI/ranksim-imbalanced-regression `imdb-wiki-dir/README.md`, "RankSim and LDS + FDS": `--reweight sqrt_inv --lds --fds`, both gaussian ks 5 σ 2, γ 100,
λ 2, batch 256, lr 1e-3; 90 epochs, ×0.1 at 60 and 80 (`train.py` defaults). README pretrained model:
MAE all 7.69, few 21.43 (its best few-shot). RankSim sees the encoder's features (before FDS).
ResNet-50 from scratch, 224² inputs; the rest of the recipe in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/imdb_lds_fds_ranksim.py --workdir=/tmp/imdb_lds_fds_ranksim \
    --config.data.data_dir=/data/imdb_wiki

`--config=configs/imdb_lds_fds_ranksim.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

import ml_collections

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("imdb")
  c.reweight.method = "sqrt_inv"  # SQINV: weights ∝ 1/sqrt(n_age), mean 1
  c.reweight.lds = True  # LDS: smooth the age histogram with the base kernel (gaussian ks 5, σ 2)
  c.fds.enabled = True  # FDS: smooth the feature statistics (gaussian ks 5, σ 2)
  c.batch_size = 256
  c.optimizer.lr = 1e-3
  c.regularizers = ml_collections.ConfigDict({"ranksim": {"name": "ranksim", "weight": 100.0, "interpolation": 2.0}})
  return age_common.for_arg(c, arg)
