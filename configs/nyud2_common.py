"""Dataset base and smoke switch of the NYUD2-DIR experiment configs (`configs/nyud2_*.py`).

Each experiment file starts from `base_config()`, writes its method's settings, and ends with
`for_arg(c, arg)`. Reference recipe (YyzHarry/imbalanced-regression `nyud2-dir/train.py`): Hu et al.
depth network on an ImageNet-pretrained ResNet-50, per-pixel weighted MSE over every pixel (no
invalid-pixel mask), Adam lr 1e-4 with coupled weight decay 1e-4, LR ×0.1 after epoch 5, 10 epochs,
batch 32; after every epoch the FDS statistics pass over the fixed 600-image subset and a test-set
evaluation that also selects the best model (there is no validation split). Metrics: RMSE etc. over
the balanced test mask per shot. LDS = inverse weights of the gaussian (ks 5, σ 2) smoothed bucket
counts (scipy 'reflect' boundary); FDS over buckets 7..99 with calibration clip [0.2, 5], NYUD2's
snapshot (non-aliased) last-epoch statistics and its whole-bucket zero-variance rule
(docs/deviations.md, reference quirks). Balanced MSE (jiawei-ren/BalancedMSE `nyud2-dir/README.md`):
GAI (16-component GMM of the reference's synthetic labels) or BNI (bucket prior), σ fixed at 1 m,
loss only on pixels with depth ≥ 0.7 m. The LDS weight table and the BNI prior come from the
reference's pixel counts `TRAIN_BUCKET_NUM` (the data bundle's `train_bin_counts`), the GMM from its
3,644 synthetic labels, as in the reference.

Deviation: ImageNet weights cannot be downloaded here — without `model.encoder_weights` (a
converted checkpoint, see `dirjax.models.depth`) the encoder trains from scratch and the README
numbers are out of reach.
"""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """Vanilla run: per-pixel MSE, no re-weighting, no FDS."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_epochs = 10
  c.batch_size = 32
  c.eval_batch_size = 32
  c.input_threads = 8  # JPEG/PNG decoding + scipy rotation per example
  c.prefetch_to_device = 2  # batches read and placed on the devices during the step before (0: off)
  c.mesh = ml_collections.ConfigDict({"shape": (-1,), "axes": ("data",)})
  c.data = ml_collections.ConfigDict({
    "name": "nyud2_dir", "data_dir": "./data/nyud2",
    "loss_min_depth": 0.0,  # 0: every pixel counts (DIR); 0.7: Balanced-MSE domain
    "color_augment": True})
  c.model = ml_collections.ConfigDict({
    "name": "depth_resnet50", "width": 64, "stage_sizes": (3, 4, 6, 3), "encoder_weights": ""})
  c.loss = ml_collections.ConfigDict({
    "name": "mse", "kwargs": {}, "init_noise_sigma": 1.0, "fix_noise_sigma": True, "sigma_lr": 1e-2,
    "sigma_schedule": "constant", "prior": "", "gmm_components": 16})
  c.reweight = ml_collections.ConfigDict({
    "method": "none", "lds": False, "kernel": "gaussian", "ks": 5, "sigma": 2.0, "lds_mode": "reflect",
    "faithful": True, "inverse_clip": None, "dense_alpha": 1.0})
  c.fds = ml_collections.ConfigDict({
    "enabled": False, "kernel": "gaussian", "ks": 5, "sigma": 2.0, "start_update": 0, "start_smooth": 1,
    "momentum": 0.9, "clip_min": 0.2, "clip_max": 5.0, "zero_var_rule": "whole_bucket",
    "alias_last_epoch": False, "fill_empty": False})
  c.optimizer = ml_collections.ConfigDict({
    "name": "adam", "lr": 1e-4, "weight_decay": 1e-4, "momentum": 0.9,
    "schedule": "multistep", "milestones": (5,), "decay_factor": 0.1})
  c.eval = ml_collections.ConfigDict({
    "every_epochs": 1, "splits": ("test",), "select_split": "test", "select_metric": "all/rmse",
    "balanced_metric": False})
  c.checkpoint = ml_collections.ConfigDict({"every_epochs": 1, "every_steps": 0, "max_to_keep": 1,
                                        "allow_config_change": False})
  c.init_from = ""
  c.train_only = ""  # RRT as the reference: "regressor|head" (the whole head R)
  c.log_every_steps = 100
  c.report = ml_collections.ConfigDict({
    "split": "test", "metrics": ("all/rmse", "many/rmse", "medium/rmse", "few/rmse")})
  c.variants = ml_collections.ConfigDict()
  return c


def for_arg(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """`c` for `arg == ""`; for `arg == "smoke"` one step on a tiny fixture with a tiny network (the tests
  set data_dir)."""
  if arg not in ("", "smoke"):
    raise ValueError(f"unknown config argument {arg!r}; use '' or 'smoke'")
  if arg == "smoke":
    c.num_epochs = 1
    c.batch_size = c.eval_batch_size = 4
    c.input_threads = 0
    c.model.width, c.model.stage_sizes = 4, (1, 1, 1, 1)
    c.log_every_steps = 1
  return c
