"""Long-tailed image regression on generated data: the DIR methods on a small ResNet, no download.

32×32 grey images of a disk whose size score y ∈ [0, 100) is the target (radius 2 + 0.12·y px,
random position, contrast and noise; `dirjax.data.synthetic.images`). Training targets are
long-tailed (truncated exponential, scale 20: ~200 images in bin 0, ~1 in bin 99), val/test are
balanced, so the many/medium/few-shot split (100/20 training images per unit bin, as the age
benchmarks) shows where each method helps. ResNet-18 (ImageNet stem, trained from scratch), Adam
1e-3 with cosine decay, L1 loss and selection on val MAE like the DIR age benchmarks. The CIFAR stem
(3×3/1, no max-pool) made the CPU step 2.5× slower here (docs/user_guide.md, "ResNet stems").

Variants (as the rows of the DIR / Balanced-MSE tables): vanilla, SQINV + LDS (Gaussian, ks 5,
σ 2), FDS (ks 5, σ 2), and Balanced MSE BMC / GAI (8-component GMM) / BNI, each with a learnable
σ₀ = 5 (σ lr 1e-2, constant, as the IMDB-WIKI runs), and UVOTE (two heads, r = 0 and 1, Laplace NLL
with the dynamic loss, as its AgeDB README).

Run (44 min on 2 CPU cores, about 7 min per variant; faster on a GPU); prints the many/medium/few
table of the best-on-val and last models and saves comparison.md/json and predictions.png:

  python -m dirjax.main --config=configs/synthetic_images.py --workdir=/tmp/dirjax_images

`configs/synthetic_images.py:smoke` is the one-step version used by the tests.
"""

import ml_collections

from configs import synthetic_1d


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = synthetic_1d.base_config()
  c.num_epochs = 10
  c.batch_size = 64
  c.eval_batch_size = 256
  c.input_threads = 2  # per-element flips: read batches in background threads
  c.data = ml_collections.ConfigDict({
    "name": "synthetic_images", "num_train": 3000, "num_val": 500, "num_test": 1000, "max_target": 100,
    "tail": 20.0, "noise_std": 0.1, "augment": True, "many_shot_thr": 100, "low_shot_thr": 20})
  c.model = ml_collections.ConfigDict({"name": "resnet18", "in_channels": 1, "stem": "imagenet"})
  c.optimizer = ml_collections.ConfigDict({"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "cosine"})
  c.loss = ml_collections.ConfigDict({
    "name": "l1", "kwargs": {}, "init_noise_sigma": 5.0, "fix_noise_sigma": False, "sigma_lr": 1e-2,
    "sigma_schedule": "constant", "prior": "", "gmm_components": 8})
  c.eval.every_epochs = c.checkpoint.every_epochs = 1
  c.eval.select_metric = "all/mae"
  c.log_every_steps = 20
  c.report.metrics = ("all/mae", "many/mae", "medium/mae", "few/mae", "balanced/bmae")
  c.variants = ml_collections.ConfigDict(sort_keys=False, initial_dictionary={
    "vanilla": {},
    "sqinv_lds": {"reweight": {"method": "sqrt_inv", "lds": True}},
    "fds": {"fds": {"enabled": True}},
    "bmc": {"loss": {"name": "bmc"}},
    "gai": {"loss": {"name": "gai", "prior": "gmm"}},
    "bni": {"loss": {"name": "bni", "prior": "buckets"}},
    "uvote": {"head": {"name": "uvote", "num_heads": 2},
              "loss": {"name": "uvote", "dynamic": True, "head0_dynamic": False, "log_scale_clip": (-5.0, 5.0)}},
  })
  if arg == "smoke":
    c.model.width, c.model.stage_sizes = 4, (1, 1, 1, 1)
    c = synthetic_1d.smoke(c)
    c.input_threads = 0
  return c
