"""Balanced MSE synthetic benchmark, 1-D (Ren et al., CVPR 2022, `synthetic_benchmark/main_1d.py`).

Imbalanced linear regression y = x (+ label noise N(0, 1)): training labels N(5, 0.5²) in [0, 10],
balanced eval/test labels U(0, 10). A `Linear(1, 1)` is trained with SGD (lr 1e-3, momentum 0.9,
cosine over 2000 epochs, 4 batches of 256 per epoch) by each method of the reference: MSE,
Reweight (true-density inverse weights), GAI and BMC with the true σ = 1, and their learnable-σ
versions (σ₀ = 1.5, σ's LR annealed with the model's); plus BNI (ours; not in the synthetic
reference). Model selection on the eval (`val`) MSE every 400 epochs, as the reference.

Run (about 1–2 min on 2 CPU cores; trains every variant into workdir/<variant>/, prints the
comparison table of the test MSE of the best-on-val and of the last model, writes comparison.md,
comparison.json and predictions.png):

  python -m dirjax.main --config=configs/synthetic_1d.py --workdir=/tmp/dirjax_synth1d

Reference test MSE of the LAST model (unmodified upstream `main_1d.py`, seed 0; docs/reproduction.md): MSE 4.71,
Reweight 1.86, GAI 0.017, BMC 0.0004, GAI-learnable 0.085, BMC-learnable 0.086.
One variant: `--config=configs/synthetic_1d.py:smoke` is the one-step version used by the tests.
"""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """Settings shared by the synthetic linear benchmarks (1-D values)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_epochs = 2000
  c.batch_size = 256  # global batch; 1024 samples = 4 steps per epoch
  c.eval_batch_size = 1024
  c.input_threads = 0  # in-memory arrays: read each batch when the step asks for it (no reader thread)
  c.prefetch_to_device = 0  # batches placed on the devices ahead of the step (0: off; tiny batches here)
  c.mesh = ml_collections.ConfigDict({"shape": (-1,), "axes": ("data",)})

  c.data = ml_collections.ConfigDict({
    "name": "synthetic_1d", "num_train": 1024, "num_val": 1024, "num_test": 1024,
    "train_mean": 5.0, "train_std": 0.5, "label_range": (0.0, 10.0), "noise_std": 1.0,
    "slope": 1.0, "intercept": 0.0,
    # 0.1-wide label bins (BNI prior, shot metrics); a bin holds at most ~80 training labels.
    "bin_width": 0.1, "many_shot_thr": 40, "low_shot_thr": 8})
  c.model = ml_collections.ConfigDict({"name": "mlp", "in_features": 1, "hidden": (), "out_dim": 1})

  c.loss = ml_collections.ConfigDict({
    "name": "mse", "kwargs": {},
    "init_noise_sigma": 1.0,  # the true label noise
    "fix_noise_sigma": True,
    "sigma_lr": 1e-3,  # the reference puts σ in a group with the model's LR ...
    "sigma_schedule": "main",  # ... that the cosine schedule anneals too (docs/deviations.md R25)
    "prior": "",  # "gmm" (GAI) / "buckets" (BNI): fitted on the training labels; or a .npz path
    "gmm_components": 1,  # the reference's GMM for the normal training distribution
  })
  c.reweight = ml_collections.ConfigDict({
    "method": "none", "lds": False, "kernel": "gaussian", "ks": 5, "sigma": 2.0, "lds_mode": "constant",
    "faithful": True, "inverse_clip": (5.0, 1000.0), "dense_alpha": 1.0})
  c.fds = ml_collections.ConfigDict({
    "enabled": False, "kernel": "gaussian", "ks": 5, "sigma": 2.0, "start_update": 0, "start_smooth": 1,
    "momentum": 0.9, "clip_min": 0.1, "clip_max": 10.0})
  c.optimizer = ml_collections.ConfigDict({
    "name": "sgd", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0, "schedule": "cosine"})

  c.eval = ml_collections.ConfigDict({
    "every_epochs": 400, "splits": ("val", "test"), "select_split": "val", "select_metric": "all/mse",
    "balanced_metric": False})
  c.checkpoint = ml_collections.ConfigDict({"every_epochs": 400, "every_steps": 0, "max_to_keep": 1,
                                        "allow_config_change": False})
  c.init_from = ""
  c.train_only = ""
  c.log_every_steps = 1000
  c.report = ml_collections.ConfigDict({"split": "test", "metrics": ("all/mse",)})

  gai = {"loss": {"name": "gai", "prior": "gmm"}}
  bmc = {"loss": {"name": "bmc"}}
  learnable = {"init_noise_sigma": 1.5, "fix_noise_sigma": False}  # 1.5x the true σ, as the reference
  c.variants = ml_collections.ConfigDict(sort_keys=False, initial_dictionary={
    "mse": {},
    "reweight": {"reweight": {"method": "true_inverse"}},
    "gai": gai,
    "bmc": bmc,
    "gai_learnable_sigma": {"loss": {**gai["loss"], **learnable}},
    "bmc_learnable_sigma": {"loss": {**bmc["loss"], **learnable}},
    "bni": {"loss": {"name": "bni", "prior": "buckets"}},
  })
  return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """One step per variant on tiny data (the tests' end-to-end check)."""
  c.num_epochs = 1
  c.batch_size = 8
  c.eval_batch_size = 8
  c.data.num_train, c.data.num_val, c.data.num_test = 8, 12, 12
  c.eval.every_epochs = c.checkpoint.every_epochs = 1
  c.log_every_steps = 1
  return c


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = base_config()
  return smoke(c) if arg == "smoke" else c
