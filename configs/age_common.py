"""Dataset base and smoke switch of the IMDB-WIKI-DIR / AgeDB-DIR experiment configs (`configs/{imdb,agedb}_*.py`).

Each experiment file starts from `base_config(dataset)`, writes its method's settings, and ends with
`for_arg(c, arg)`. The base is the stage-1 recipe of the DIR reference (YyzHarry/imbalanced-regression
`imdb-wiki-dir/train.py`, `agedb-dir/train.py`): ResNet-50 from scratch on 224² faces, L1 loss, Adam
(no weight decay) lr 1e-3, 90 epochs, LR ×0.1 at epochs 60 and 80, batch 256, model selection on
val MAE, test of the best checkpoint. LDS/FDS use the paper's gaussian ks 5, σ 2 on both datasets
(the README commands; the argparse defaults of `agedb-dir/train.py`, ks 9 and σ 1, are not the paper
setting). RRT (`--retrain_fc`) and the Balanced-MSE recipe (jiawei-ren/BalancedMSE
`imdb-wiki-dir/README.md`) are stage-2 runs that load a finished vanilla run (`init_from`) and train
only the linear `head`. SMOTER / SMOGN train the stage-1 recipe on the resampled training set
(`data.resample`, `dirjax.data.smogn`). Balanced MSE on AgeDB-DIR has no reference run; its configs
use the IMDB-WIKI recipe by analogy.

On AgeDB-DIR's training ages the smogn package's box-plot relevance (control points (1, 0),
(43, 0), (90, 1)) marks ages ≥ 67 as rare and nothing at the young end (no low box-plot outliers),
so "balance" sampling gives 6,104 faces each to ages 1–66 (under-sampled from 10,842) and 67–101
(grown from 1,366); the paper does not give its settings, so these are the package defaults.
Building the plan takes a few seconds.
"""

import ml_collections

DATASETS = {
  # short name: (registry name, split csv, FDS bucket_start)
  "imdb": ("imdb_wiki_dir", "imdb_wiki.csv", 0),
  "agedb": ("agedb_dir", "agedb.csv", 3),
}
INIT_FROM_REQUIRED = "SET --config.init_from=<workdir of a finished vanilla run>"


def base_config(dataset: str) -> ml_collections.ConfigDict:
  """Stage-1 vanilla run (L1, no re-weighting) on `dataset` ("imdb" or "agedb")."""
  name, csv, bucket_start = DATASETS[dataset]
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_epochs = 90
  c.batch_size = 256
  c.eval_batch_size = 256
  c.input_threads = 8  # JPEG decode threads per process (scripts/bench_input.py)
  c.input_workers = 0  # grain worker processes reading whole batches (docs/benchmarks.md, "Prepared splits")
  c.mesh = ml_collections.ConfigDict({"shape": (-1,), "axes": ("data",)})

  c.data = ml_collections.ConfigDict({
    "name": name, "data_dir": f"./data/{dataset}", "csv": csv, "img_size": 224,
    "max_target": 121,  # LDS / INV bins: integer ages, ages >= 120 share the last bin
    "label_range": (0.0, 200.0),  # valid ages (create_imdb_wiki keeps 0..200)
    "bucket_num": 100, "bucket_start": bucket_start,  # FDS buckets (fds.py defaults per dataset)
    "many_shot_thr": 100, "low_shot_thr": 20,
    # AgeDB-DIR stress tests of Puetz et al. 2026 (`dirjax.data.protocols`; "": the standard split) and the
    # relevance φ of SERA: "" = box-plot relevance of the training labels, or control points ((y, φ), ...).
    "protocol": "", "relevance_points": (),
    # uint8 img_size² cache of every split (scripts/prepare_data.py --prepare_to=DIR), augmented on the
    # device; "" reads and decodes the JPEGs under data_dir (docs/benchmarks.md, "Prepared splits").
    "prepared_dir": "",
    # SMOTER / SMOGN training set (`dirjax.data.smogn`; defaults of the smogn package), off when "".
    "resample": ml_collections.ConfigDict({"method": "", "k": 5, "pert": 0.02, "threshold": 0.5,
                                           "thumbnail": 16})})
  # bn_groups=4: BatchNorm statistics over 64-sample groups, as DataParallel on the reference's 4 GPUs
  # (docs/deviations.md, row 22).
  c.model = ml_collections.ConfigDict({"name": "resnet50", "out_dim": 1, "bn_groups": 4})

  c.loss = ml_collections.ConfigDict({
    "name": "l1", "kwargs": {},
    "init_noise_sigma": 1.0, "fix_noise_sigma": True, "sigma_lr": 1e-2,
    "sigma_schedule": "constant",  # the reference's LR schedule skips the noise_sigma group
    "prior": "", "gmm_components": 8})
  c.reweight = ml_collections.ConfigDict({
    "method": "none", "lds": False, "kernel": "gaussian", "ks": 5, "sigma": 2.0, "lds_mode": "constant",
    "faithful": True, "inverse_clip": (5.0, 1000.0), "dense_alpha": 1.0})
  c.fds = ml_collections.ConfigDict({
    "enabled": False, "kernel": "gaussian", "ks": 5, "sigma": 2.0, "start_update": 0, "start_smooth": 1,
    "momentum": 0.9, "clip_min": 0.1, "clip_max": 10.0})
  c.optimizer = ml_collections.ConfigDict({
    "name": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0,
    "schedule": "multistep", "milestones": (60, 80), "decay_factor": 0.1})

  c.eval = ml_collections.ConfigDict({
    "every_epochs": 1, "splits": ("val", "test"), "select_split": "val", "select_metric": "all/mae",
    "balanced_metric": False})
  c.checkpoint = ml_collections.ConfigDict({"every_epochs": 1, "every_steps": 0, "max_to_keep": 1,
                                        "allow_config_change": False})
  c.init_from = ""
  c.train_only = ""
  c.log_every_steps = 50
  c.report = ml_collections.ConfigDict({"split": "test", "metrics": ("all/mae", "many/mae", "medium/mae", "few/mae")})
  c.variants = ml_collections.ConfigDict()
  return c


def for_arg(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """`c` for `arg == ""`; for `arg == "smoke"` its one-step version on tiny data with a tiny model (the
  tests' end-to-end check; they set data_dir)."""
  if arg not in ("", "smoke"):
    raise ValueError(f"unknown config argument {arg!r}; use '' or 'smoke'")
  if arg == "smoke":
    c.num_epochs = 1
    c.batch_size = c.eval_batch_size = 8
    c.input_threads = 0
    c.data.img_size = 32
    c.model = ml_collections.ConfigDict({"name": "resnet18", "out_dim": 1, "bn_groups": 4, "width": 4,
                                        "stage_sizes": (1, 1, 1, 1)})
    c.loss.gmm_components = 2  # the fixtures have only a handful of distinct ages
    c.log_every_steps = 1
  return c
