"""Balanced MSE synthetic benchmark, 2-D (Ren et al., CVPR 2022, `synthetic_benchmark/main_2d.py`).

Training labels y ~ N(0, [[1, .5], [.5, 1]]), inputs x = A(y − ε) with ε ~ N(0, I) and
A = 0.01·randn(2, 2) (seeded); balanced eval/test labels U([−5, 5]²) with x = Ay. A `Linear(2, 2)`
is trained with Adam (lr 0.2, cosine over 10,000 epochs of 4 batches of 256) by MSE, Reweight,
GAI / BMC with the true σ = 1 and their learnable-σ versions (σ₀ = 1.5, σ lr 0.01, annealed with
the model's as the reference's cosine schedule). Selection on the eval MSE every 1000 epochs.

Run (several minutes on 2 CPU cores):

  python -m dirjax.main --config=configs/synthetic_2d.py --workdir=/tmp/dirjax_synth2d

Reference test MSE of the LAST model (unmodified upstream `main_2d.py`, seed 0; docs/reproduction.md): MSE 2.46,
Reweight 0.87, GAI 0.069, BMC 0.015, GAI-learnable 0.19, BMC-learnable 0.085.
`configs/synthetic_2d.py:smoke` is the one-step version used by the tests.
"""

import ml_collections

from configs import synthetic_1d


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = synthetic_1d.base_config()
  c.num_epochs = 10_000
  c.eval_batch_size = 256
  c.data = ml_collections.ConfigDict({
    "name": "synthetic_2d", "num_train": 1024, "num_val": 256, "num_test": 256,
    "train_cov": ((1.0, 0.5), (0.5, 1.0)), "label_range": (-5.0, 5.0), "noise_std": 1.0,
    "matrix_scale": 0.01})
  c.model = ml_collections.ConfigDict({"name": "mlp", "in_features": 2, "hidden": (), "out_dim": 2})
  c.optimizer = ml_collections.ConfigDict({"name": "adam", "lr": 0.2, "weight_decay": 0.0, "schedule": "cosine"})
  c.loss.sigma_lr = 0.01
  c.eval.every_epochs = c.checkpoint.every_epochs = 1000
  c.log_every_steps = 5000
  with c.variants.unlocked():
    del c.variants["bni"]  # no multi-dimensional BNI in the reference
  return synthetic_1d.smoke(c) if arg == "smoke" else c
