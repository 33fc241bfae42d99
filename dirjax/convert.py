"""Reference PyTorch checkpoints → dirjax workdirs (evaluate or fine-tune the published DIR / Balanced-MSE models).

  python -m dirjax.convert --checkpoint=agedb_fds.pth.tar --config=configs/agedb_fds.py \
    --config.data.data_dir=/data/agedb --workdir=/tmp/agedb_fds_published
  python -m dirjax.main --config=configs/agedb_fds.py --config.data.data_dir=/data/agedb \
    --workdir=/tmp/agedb_fds_published --mode=eval

The checkpoint is what the reference `torch.save`s: a dict with `state_dict` (age and NYUD2 code,
keys under `module.` from `nn.DataParallel`) or a bare state dict (STS-B `model_state_best.th`).
The config names the dirjax model it becomes; the workdir gets `config.json` and one orbax
checkpoint (`best` and `latest`, marked as a finished run) written by the trainer itself
(`train.Experiment.init_state` / `save`), so `--mode=eval` evaluates it and `init_from` starts
RRT / Balanced MSE stage 2 from it. Converting needs the config's data (as evaluating does).

Covered families (reference files; parameter names → dirjax paths):

* `resnet18` / `resnet50`: YyzHarry/imbalanced-regression `imdb-wiki-dir/resnet.py` (= `agedb-dir`,
  = jiawei-ren/BalancedMSE `imdb-wiki-dir/resnet.py`), `FDS.*` buffers from `fds.py` when present.
* `depth_resnet50`: `nyud2-dir/models/{net,modules}.py` (`E`, `D`, `MFF`, `R`, `R.FDS.*`).
* `bilstm`: `sts-b-dir/models.py` (allennlp embedding, 2-layer bidirectional `nn.LSTM`, `sts-b_pred_layer`).

Layouts: conv kernels OIHW → HWIO; linear weights [out, in] → [in, out]; BatchNorm weight / bias /
running_mean / running_var → scale / bias / mean / var (`num_batches_tracked` dropped); LSTM
`weight_ih` / `weight_hh` [4H, ·] → `dense_i` / `dense_h` kernels [·, 4H] (both use the gate order
i, f, g, o) and `bias_ih + bias_hh` → the one `dense_h` bias; FDS `epoch` [1] float and
`num_samples_tracked` float → int32. Balanced-MSE σ is not in the reference checkpoints (it lives in
the loss: BalancedMSE `imdb-wiki-dir/balanaced_mse.py`, sic); give it with `--noise_sigma` (the training log prints the
noise variance σ²), else a checkpoint entry `noise_sigma` is used, else the config's initial σ.

`to_dirjax_arrays` (one function per family) gives `{path in the task network: array}`;
`model_state_path` is the single place that says where those paths live in the trainer's model
state, and `place` writes them there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dirjax import checkpoint as checkpoint_lib
from dirjax import optim

BN_NAMES = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
FDS_BUFFERS = ("epoch", "running_mean", "running_var", "running_mean_last_epoch", "running_var_last_epoch",
               "smoothed_mean_last_epoch", "smoothed_var_last_epoch", "num_samples_tracked")
SHOWN = 20  # unmatched names listed in an error


class ConversionError(ValueError):
  """The checkpoint is missing, not a PyTorch file, or does not match the config's model."""


# ------------------------------------------------------------------------------------------------
# Reading the PyTorch file.


def load_torch_checkpoint(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """(state dict as float numpy arrays without `module.` prefixes, the checkpoint's other entries).

  Loaded with `weights_only=True`: tensors, numbers and strings only, no code from the file runs.
  """
  if not os.path.isfile(path):
    raise ConversionError(f"checkpoint {path!r} does not exist")
  try:
    import torch
  except ImportError as e:
    raise ImportError("converting PyTorch checkpoints needs torch: pip install 'dirjax[convert]'") from e
  try:
    loaded = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # torch raises assorted types for files that are not its archives
    raise ConversionError(f"{path!r} is not a readable PyTorch checkpoint ({type(e).__name__}: {e}); "
                          "pass the .pth.tar / .th file the reference saved") from e
  if not isinstance(loaded, dict):
    raise ConversionError(f"{path!r} holds a {type(loaded).__name__}, not a checkpoint dict / state dict")
  state_dict = loaded.get("state_dict", loaded)
  extras = {k: v for k, v in loaded.items() if k != "state_dict"} if "state_dict" in loaded else {}
  arrays = {}
  for name, value in state_dict.items():
    if not isinstance(value, torch.Tensor):
      raise ConversionError(f"{path!r}: entry {name!r} is a {type(value).__name__}, not a tensor; "
                            "expected a state dict (or a dict with one under 'state_dict')")
    if name.endswith("num_batches_tracked"):
      continue
    arrays[name.removeprefix("module.")] = value.detach().float().numpy()
  return arrays, extras


# ------------------------------------------------------------------------------------------------
# Layouts.


def conv_kernel(weight: np.ndarray) -> np.ndarray:
  """PyTorch conv weight [out, in, kh, kw] → flax kernel [kh, kw, in, out]."""
  return np.transpose(weight, (2, 3, 1, 0))


def linear_kernel(weight: np.ndarray) -> np.ndarray:
  """PyTorch linear weight [out, in] → flax kernel [in, out]."""
  return np.transpose(weight)


def _layer(path: str, leaf: str, value: np.ndarray) -> tuple[str, np.ndarray]:
  """A conv / linear / BatchNorm tensor `leaf` (PyTorch name) of the module at dirjax `path`."""
  if value.ndim == 4:
    return f"{path}/kernel", conv_kernel(value)
  if value.ndim == 2 and leaf == "weight":
    return f"{path}/kernel", linear_kernel(value)
  return f"{path}/{BN_NAMES.get(leaf, leaf)}", value  # 1-D: BatchNorm tensors, or a conv / linear bias


def _fds_buffer(leaf: str, value: np.ndarray) -> tuple[str, np.ndarray]:
  """FDS buffer `leaf` (reference `fds.py` names = dirjax `FDS` names); epoch [1] → scalar."""
  if leaf == "epoch":
    value = value.reshape(())
  return f"fds/{leaf}", value


def _rename(state_dict: dict[str, np.ndarray], rule: Callable[[str, np.ndarray], tuple[str, np.ndarray] | None]):
  """Applies `rule` (None: unknown name) to every entry; unknown names raise with the full list."""
  out, unknown = {}, []
  for name, value in state_dict.items():
    renamed = rule(name, value)
    if renamed is None:
      unknown.append(name)
    else:
      out[renamed[0]] = renamed[1]
  if unknown:
    raise ConversionError(_unmatched_message("checkpoint names this model family does not have", unknown))
  return out


def _unmatched_message(what: str, names: list[str]) -> str:
  shown = "\n  ".join(sorted(names)[:SHOWN]) + (f"\n  ... {len(names) - SHOWN} more" if len(names) > SHOWN else "")
  return (f"{len(names)} {what} (a checkpoint of another architecture or method? check --config, "
          f"e.g. its fds.enabled):\n  {shown}")


# ------------------------------------------------------------------------------------------------
# One function per model family: reference names → paths inside the task network.


def _resnet_block_index(stage_sizes: tuple[int, ...]) -> Callable[[int, int], int]:
  """(reference layer number 1..4, block in layer) → index into dirjax `ResNet.blocks`."""
  starts = np.concatenate([[0], np.cumsum(stage_sizes)])
  return lambda layer, block: int(starts[layer - 1]) + block


def age_resnet_arrays(state_dict: dict[str, np.ndarray], model_config: ml_collections.ConfigDict):
  """`resnet.py` ResNet (conv1, bn1, layer1..4, linear, FDS.*) → `dirjax.models.resnet.ResNet` paths."""
  from dirjax.models import resnet
  depth = {"resnet18": 18, "resnet50": 50}[model_config.name]
  stage_sizes = tuple(model_config.get("stage_sizes") or resnet.ARCHITECTURES[depth][1])
  block_index = _resnet_block_index(stage_sizes)

  def rule(name, value):
    parts = name.split(".")
    if parts[0] == "FDS" and len(parts) == 2 and parts[1] in FDS_BUFFERS:
      return _fds_buffer(parts[1], value)
    if parts[0] == "linear" and len(parts) == 2:
      return _layer("head", parts[1], value)
    if parts[0] in ("conv1", "bn1") and len(parts) == 2:
      return _layer(parts[0], parts[1], value)
    match = re.fullmatch(r"layer([1-4])\.(\d+)\.(conv[1-3]|bn[1-3]|downsample\.[01])\.(\w+)", name)
    if match is None or int(match[2]) >= stage_sizes[int(match[1]) - 1]:
      return None
    module = match[3].replace("downsample.", "downsample/layers/")
    return _layer(f"blocks/{block_index(int(match[1]), int(match[2]))}/{module}", match[4], value)

  return _rename(state_dict, rule)


_UP_PROJECTION = r"(conv1|bn1|conv1_2|bn1_2|conv2|bn2)"
_DEPTH_HEAD = {"conv0": "regressor/layers/0", "bn0": "regressor/layers/1", "conv1": "regressor/layers/3",
               "bn1": "regressor/layers/4", "conv2": "head"}


def depth_arrays(state_dict: dict[str, np.ndarray], model_config: ml_collections.ConfigDict):
  """`nyud2-dir/models` net (E, D, MFF, R, R.FDS.*) → `dirjax.models.depth.DepthNet` paths."""
  stage_sizes = tuple(model_config.get("stage_sizes") or (3, 4, 6, 3))

  def rule(name, value):
    parts = name.split(".")
    if name.startswith("R.FDS.") and len(parts) == 3 and parts[2] in FDS_BUFFERS:
      return _fds_buffer(parts[2], value)
    if parts[0] == "R" and len(parts) == 3 and parts[1] in _DEPTH_HEAD:
      return _layer(_DEPTH_HEAD[parts[1]], parts[2], value)
    if parts[0] == "E" and parts[1] in ("conv1", "bn1") and len(parts) == 3:
      return _layer(f"encoder/{parts[1]}", parts[2], value)
    match = re.fullmatch(r"E\.layer([1-4])\.(\d+)\.(conv[1-3]|bn[1-3]|downsample\.[01])\.(\w+)", name)
    if match and int(match[2]) < stage_sizes[int(match[1]) - 1]:
      module = match[3].replace("downsample.", "downsample/layers/")
      return _layer(f"encoder/stages/{int(match[1]) - 1}/layers/{match[2]}/{module}", match[4], value)
    match = re.fullmatch(rf"(D|MFF)\.up([1-4])\.{_UP_PROJECTION}\.(\w+)", name)
    if match:
      group = {"D": "decoder_up", "MFF": "mff_up"}[match[1]]
      return _layer(f"{group}/{int(match[2]) - 1}/{match[3]}", match[4], value)
    match = re.fullmatch(r"(D|MFF)\.(conv|bn)\.(\w+)", name)
    if match:
      prefix = {"D": "decoder", "MFF": "mff"}[match[1]]
      return _layer(f"{prefix}_{match[2]}", match[3], value)
    return None

  return _rename(state_dict, rule)


_EMBEDDING = "pair_encoder._text_field_embedder.token_embedder_words.weight"
_LSTM = "pair_encoder._phrase_layer._module."


def bilstm_arrays(state_dict: dict[str, np.ndarray], model_config: ml_collections.ConfigDict):
  """`sts-b-dir/models.py` MultiTaskModel → `dirjax.models.text.BiLSTMEncoder` paths (+ the scaled head).

  Each LSTM direction's two biases are summed into flax's single `dense_h` bias.
  """
  del model_config
  lstm_name = re.compile(rf"{re.escape(_LSTM)}(weight|bias)_(ih|hh)_l(\d+)(_reverse)?")
  lstm = {name: value for name, value in state_dict.items() if lstm_name.fullmatch(name)}

  def rule(name, value):
    parts = name.split(".")
    if parts[0] == "FDS" and len(parts) == 2 and parts[1] in FDS_BUFFERS:
      return _fds_buffer(parts[1], value)
    if name == _EMBEDDING:
      return "embedding", value
    if parts[0] == "sts-b_pred_layer" and len(parts) == 2:
      return _layer("head/linear", parts[1], value)
    return None

  out = _rename({k: v for k, v in state_dict.items() if k not in lstm}, rule)
  for name, value in lstm.items():
    kind, which, layer, reverse = lstm_name.fullmatch(name).groups()
    cell = f"lstm/{layer}/{'backward_rnn' if reverse else 'forward_rnn'}/cell"
    if kind == "weight":
      out[f"{cell}/dense_{which[0]}/kernel"] = linear_kernel(value)
    elif which == "ih":
      hh = name.replace("bias_ih", "bias_hh")
      if hh not in lstm:
        raise ConversionError(f"{name} is in the checkpoint but {hh} is not")
      out[f"{cell}/dense_h/bias"] = value + lstm[hh]
  return out


FAMILIES: dict[str, Callable[[dict[str, np.ndarray], ml_collections.ConfigDict], dict[str, np.ndarray]]] = {
  "resnet18": age_resnet_arrays, "resnet50": age_resnet_arrays, "depth_resnet50": depth_arrays,
  "bilstm": bilstm_arrays,
}


def to_dirjax_arrays(state_dict: dict[str, np.ndarray], model_config: ml_collections.ConfigDict):
  """`{path in the task network: array}` for the config's model, e.g. `"blocks/0/conv1/kernel"`."""
  if model_config.name not in FAMILIES:
    raise ConversionError(f"no converter for model {model_config.name!r}; covered: {sorted(FAMILIES)}")
  return FAMILIES[model_config.name](state_dict, model_config)


# ------------------------------------------------------------------------------------------------
# Placing the arrays into the trainer's model state.


def model_state_path(path: str) -> str:
  """Where a task-network path lives in the trainer's model state (`dirjax.models.regressor.Regressor`):
  the head, the FDS statistics and σ are the wrapper's own, the rest is the encoder's. The ONE place
  to edit when the Regressor's layout changes."""
  top = path.split("/")[0]
  return path if top in ("head", "fds", "noise_sigma") else f"encoder/{path}"


def _is_converted(path: str) -> bool:
  """Model variables a checkpoint must provide: everything except RNG streams (dropout keys)."""
  return "rngs" not in path.split("/")


def place(arrays: dict[str, np.ndarray], model_state: Any) -> Any:
  """`model_state` (a trainer `state["model"]`) with every variable taken from `arrays` (keys as
  `to_dirjax_arrays` gives them, plus `noise_sigma`), cast to the state's dtypes.

  Every checkpoint array must land on a variable of the same shape and every variable (but RNG
  streams) must get one; otherwise a `ConversionError` lists the unmatched names.
  """
  targets = dict((optim.path_str(p), (p, leaf)) for p, leaf in jax.tree_util.tree_leaves_with_path(model_state))
  wanted = {model_state_path(k): v for k, v in arrays.items()}
  extra = [k for k in wanted if k not in targets]
  missing = [k for k in targets if _is_converted(k) and k not in wanted]
  problems = []
  if extra:
    problems.append(_unmatched_message("checkpoint arrays without a place in the dirjax model", extra))
  if missing:
    problems.append(_unmatched_message("dirjax model variables the checkpoint does not provide", missing))
  for key in sorted(set(wanted) & set(targets)):
    target_shape = tuple(targets[key][1].shape)
    if wanted[key].shape != target_shape:
      problems.append(f"{key}: checkpoint shape {list(wanted[key].shape)} vs model {list(target_shape)} "
                      "(another width / depth / feature size than the config's model?)")
  if problems:
    raise ConversionError("\n".join(problems))
  leaves = [jnp.asarray(wanted[optim.path_str(p)], leaf.dtype) if optim.path_str(p) in wanted else leaf
            for p, leaf in jax.tree_util.tree_leaves_with_path(model_state)]
  return jax.tree.unflatten(jax.tree.structure(model_state), leaves)


def noise_sigma_of(extras: dict[str, Any], flag: float | None, config: ml_collections.ConfigDict) -> float:
  """σ for a Balanced-MSE config: the flag, else the checkpoint's `noise_sigma` entry, else the
  config's `loss.init_noise_sigma` (the reference does not save σ)."""
  if flag is not None:
    return float(flag)
  if "noise_sigma" in extras:
    return float(np.asarray(extras["noise_sigma"]))
  return float(config.loss.init_noise_sigma)


def convert(checkpoint: str, config: ml_collections.ConfigDict, workdir: str,
            noise_sigma: float | None = None) -> dict:
  """Writes `workdir` (config.json + an orbax checkpoint at step 0, `best` and `latest`) holding the
  PyTorch `checkpoint` as the config's dirjax model; returns the checkpoint meta.

  `config.init_from` is cleared (the converted model is the finished run). Optimizer state is fresh.
  """
  from dirjax import losses, train

  state_dict, extras = load_torch_checkpoint(checkpoint)
  arrays = to_dirjax_arrays(state_dict, config.model)
  config = ml_collections.ConfigDict(config.to_dict())
  config.init_from = ""
  balanced = config.loss.name in losses.BALANCED_MSE_LOSSES
  if balanced:
    arrays["noise_sigma"] = np.asarray(noise_sigma_of(extras, noise_sigma, config), np.float32)
  elif noise_sigma is not None:
    raise ConversionError(f"--noise_sigma is only for Balanced-MSE configs; loss {config.loss.name!r} has no σ")
  experiment = train.Experiment(config)
  state = experiment.init_state()
  state["model"] = place(arrays, state["model"])
  os.makedirs(workdir, exist_ok=True)
  checkpoints = os.path.join(workdir, "checkpoints")
  if os.path.isdir(checkpoints) and os.listdir(checkpoints):
    raise ConversionError(f"{checkpoints} already holds checkpoints; convert into an empty workdir")
  epoch = config.num_epochs  # a finished run: `--mode=train` on it evaluates instead of training over it
  meta = {"epoch": epoch, "step": 0, "data_position": [epoch, 0],
          "best": {"value": float("inf"), "epoch": epoch - 1, "step": 0},
          "converted_from": os.path.abspath(checkpoint), "reference_epoch": extras.get("epoch")}
  meta["reference_epoch"] = None if meta["reference_epoch"] is None else int(meta["reference_epoch"])
  identity = checkpoint_lib.run_identity(config, steps_per_epoch=experiment.steps_per_epoch,
                                         train_size=len(experiment.bundle.splits["train"]), mesh=experiment.mesh)
  with checkpoint_lib.Checkpointer(checkpoints, identity=identity) as ckpt:
    ckpt.save(0, state, meta, is_best=True)
  train._save_config(config, workdir)  # the trainer's own config.json writer
  return meta


def main(argv: list[str]) -> None:
  import logging as std_logging

  from absl import app, flags, logging

  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  # orbax logs every save at INFO; keep its warnings only (as dirjax.main).
  logging.get_absl_logger().addFilter(lambda r: r.levelno >= std_logging.WARNING or "orbax" not in r.pathname)
  meta = convert(f.checkpoint, f.config, f.workdir, f.noise_sigma)
  print(f"converted {meta['converted_from']} (reference epoch {meta['reference_epoch']}) into {f.workdir}")


if __name__ == "__main__":
  from absl import app, flags
  from ml_collections import config_flags

  config_flags.DEFINE_config_file("config", None, "dirjax config of the converted model (configs/*.py).",
                                  lock_config=True)
  flags.DEFINE_string("checkpoint", None, "Reference PyTorch checkpoint (.pth.tar / .th).")
  flags.DEFINE_string("workdir", None, "Empty directory for the dirjax run (config.json + checkpoints/).")
  flags.DEFINE_float("noise_sigma", None, "Balanced-MSE configs: the learned σ (sqrt of the logged noise variance).")
  flags.mark_flags_as_required(["config", "checkpoint", "workdir"])
  app.run(main)
