"""Model registry and the contract shared by every dirjax model.

Every model is an ``nnx.Module`` called as ``model(x, targets=None, epoch=None) -> (pred, features)``:

* ``features`` is the encoding right before the linear head, *raw* (before FDS calibration).
  The reference (IMDB/AgeDB/STS-B, quirk Q7) calibrates the encoding in place, so the features it
  returns to the FDS statistics pass are already smoothed once ``epoch >= start_smooth``; the
  statistics pass must see raw features (as NYUD2's code does), so we return those.
* When an ``fds`` module is attached and the model is in training mode (``model.train()``), the
  head sees ``fds(features, targets, epoch)``; in eval mode FDS is not called.
* The linear head is the attribute ``head`` (an ``nnx.Linear``), so RRT can re-initialise and train
  only parameter paths containing ``"head"``.
"""

from __future__ import annotations

import importlib
import inspect
import math
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from ml_collections import ConfigDict

if TYPE_CHECKING:
  from dirjax.fds import FDS

# name -> ("module:Class", arguments fixed by the name); imported only when selected.
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
  "mlp": ("dirjax.models.mlp:MLP", {}),
  "resnet18": ("dirjax.models.resnet:ResNet", {"depth": 18}),
  "resnet50": ("dirjax.models.resnet:ResNet", {"depth": 50}),
  "depth_resnet50": ("dirjax.models.depth:DepthNet", {}),
  "bilstm": ("dirjax.models.text:BiLSTMRegressor", {}),
}


def model_class_of(name: str) -> tuple[type, dict[str, Any]]:
  """(class, fixed arguments) of a registered model name, or of `"my_project.models:MyNet"` (the
  import path of the user's own class following the contract above, no fixed arguments)."""
  if name in MODELS:
    path, fixed = MODELS[name]
  elif isinstance(name, str) and name.count(":") == 1:
    path, fixed = name, {}
  else:
    raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)} or give the import path "
                     "of your own nnx.Module class as 'package.module:ClassName'")
  module_name, class_name = path.split(":")
  try:
    model_class = getattr(importlib.import_module(module_name), class_name)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"model {name!r}: cannot import {class_name!r} from {module_name!r} ({e})") from e
  return model_class, fixed


def get_model(model_config: ConfigDict, *, rngs: nnx.Rngs, fds: FDS | None = None) -> nnx.Module:
  """Builds the model ``model_config.name`` with the config's other keys as keyword arguments."""
  kwargs = dict(model_config)
  name = kwargs.pop("name", None)
  model_class, fixed = model_class_of(name)
  signature = inspect.signature(model_class.__init__)
  valid = [
    p.name for p in signature.parameters.values()
    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    and p.name not in ("self", "rngs", "fds", *fixed)
  ]
  unknown = sorted(set(kwargs) - set(valid))
  if unknown:
    raise ValueError(f"model {name!r} got unknown option(s) {unknown}; valid ones are {valid}")
  missing = [
    p.name for p in signature.parameters.values()
    if p.name in valid and p.default is p.empty and p.name not in kwargs
  ]
  if missing:
    raise ValueError(f"model {name!r} needs option(s) {missing} in the model config")
  return model_class(**fixed, **kwargs, rngs=rngs, fds=fds)


def check_inputs(model_config: ConfigDict, element_inputs: Any) -> None:
  """Runs the model abstractly (no compile, no FLOPs) on one data element; when the model cannot
  take the data's inputs it fails naming both, e.g. an MLP whose `in_features` is not the number
  of features, instead of an XLA shape error inside the first step."""
  sample = jax.ShapeDtypeStruct((1, *np.shape(element_inputs)), jnp.asarray(element_inputs).dtype)
  model = nnx.eval_shape(lambda: get_model(model_config, rngs=nnx.Rngs(0)))
  model.eval()
  graphdef, state = nnx.split(model)
  try:
    jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, sample)
  except (TypeError, ValueError) as e:
    options = {k: v for k, v in model_config.items() if k != "name"}
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0].rstrip(".")
    raise ValueError(f"model {model_config.name!r} ({options}) cannot take this data's inputs of shape "
                     f"{tuple(np.shape(element_inputs))} per element: {reason}. Set the model's input size to "
                     f"match the data (for the MLP: model.in_features={int(np.prod(np.shape(element_inputs)))})") from e


def pytorch_linear(
    in_features: int,
    out_features: int,
    *,
    rngs: nnx.Rngs,
    dtype: Any = None,
    param_dtype: Any = jnp.float32,
) -> nnx.Linear:
  """``nnx.Linear`` with PyTorch's default ``nn.Linear`` init: weight and bias ~ U(±1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(in_features)

  def uniform(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return nnx.Linear(
    in_features, out_features, kernel_init=uniform, bias_init=uniform,
    dtype=dtype, param_dtype=param_dtype, rngs=rngs)


class RegressionModel(nnx.Module):
  """Base of dirjax's models: a ``deterministic`` flag that ``train()``/``eval()`` and
  ``nnx.view(model, deterministic=...)`` toggle, switching FDS (applied in ``apply_head``) on/off."""

  def set_view(self, deterministic: bool | None = None) -> None:
    if deterministic is not None:
      self.deterministic = deterministic


def apply_head(module: nnx.Module, features: jax.Array, targets: jax.Array | None, epoch: Any) -> jax.Array:
  """Runs ``module.head`` on ``features``, FDS-calibrated first when training with ``module.fds``."""
  if module.fds is not None and not module.deterministic:
    if targets is None or epoch is None:
      raise ValueError("a model with FDS needs `targets` and `epoch` in training mode")
    features = module.fds(features, targets, epoch)
  return module.head(features)
