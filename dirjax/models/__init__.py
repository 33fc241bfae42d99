"""Model registry: `config.model.name` → an encoder class (`dirjax.models.base.Encoder`).

Every model is an encoder, ``encoder(x) -> features``; the trainer wraps it in
`dirjax.models.regressor.Regressor` (encoder → FDS → head, σ). A name of the form
``"my_project.models:MyEncoder"`` imports the user's own `Encoder` subclass.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from ml_collections import ConfigDict

# name -> ("module:Class", arguments fixed by the name); imported only when selected.
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
  "mlp": ("dirjax.models.mlp:MLP", {}),
  "resnet18": ("dirjax.models.resnet:ResNet", {"depth": 18}),
  "resnet50": ("dirjax.models.resnet:ResNet", {"depth": 50}),
  "depth_resnet50": ("dirjax.models.depth:DepthNet", {}),
  "bilstm": ("dirjax.models.text:BiLSTMEncoder", {}),
}


def model_class_of(name: str) -> tuple[type, dict[str, Any]]:
  """(class, fixed arguments) of a registered model name, or of `"my_project.models:MyNet"` (the
  import path of the user's own `Encoder` subclass, no fixed arguments)."""
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


def get_model(model_config: ConfigDict, *, rngs: nnx.Rngs) -> nnx.Module:
  """Builds the encoder ``model_config.name`` with the config's other keys as keyword arguments."""
  kwargs = dict(model_config)
  name = kwargs.pop("name", None)
  model_class, fixed = model_class_of(name)
  signature = inspect.signature(model_class.__init__)
  valid = [
    p.name for p in signature.parameters.values()
    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    and p.name not in ("self", "rngs", *fixed)
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
  return model_class(**fixed, **kwargs, rngs=rngs)


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
