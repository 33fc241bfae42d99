"""AgeDB-DIR, SQINV + LDS + FDS + RankSim: the DIR methods (gaussian ks 5, σ 2) with γ·RankSim.

BorealisAI/ranksim-imbalanced-regression `agedb-dir/README.md`, "RankSim and LDS + FDS": `--reweight sqrt_inv --lds --fds`, both gaussian ks 5 σ 2, γ 100,
λ 2, batch 64, lr 2.5e-4; 90 epochs, ×0.1 at 60 and 80 (`train.py` defaults). The README gives no MAE
for this row. RankSim sees the encoder's features (before FDS, as the reference's `encoding`).
ResNet-50 from scratch, 224² inputs; the rest of the recipe in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/agedb_lds_fds_ranksim.py --workdir=/tmp/agedb_lds_fds_ranksim \
    --config.data.data_dir=/data/agedb

`--config=configs/agedb_lds_fds_ranksim.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

import ml_collections

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
  c.reweight.method = "sqrt_inv"  # SQINV: weights ∝ 1/sqrt(n_age), mean 1
  c.reweight.lds = True  # LDS: smooth the age histogram with the base kernel (gaussian ks 5, σ 2)
  c.fds.enabled = True  # FDS: smooth the feature statistics (gaussian ks 5, σ 2)
  c.batch_size = 64
  c.optimizer.lr = 2.5e-4
  c.regularizers = ml_collections.ConfigDict({"ranksim": {"name": "ranksim", "weight": 100.0, "interpolation": 2.0}})
  return age_common.for_arg(c, arg)
