"""The encoder contract and the PyTorch-style linear head.

An encoder is an ``nnx.Module`` called as ``encoder(x) -> features``: the encoding right before the
head, ``[B, D]`` (or ``[B, H, W, D]`` per pixel for dense tasks). It knows nothing about FDS,
targets or epochs; `dirjax.models.regressor.Regressor` puts FDS and the head after it.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


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


class Encoder(nnx.Module):
  """Base of every model: ``encoder(x) -> features`` with ``feature_dim`` set by ``__init__``.

  ``make_head`` builds the module that maps the (FDS-calibrated) features to predictions; the
  default is a PyTorch-initialised ``Linear(feature_dim, out_dim)``. A dense or scaled task
  overrides it (`DepthNet`: a 5×5 conv per pixel; `BiLSTM`: the score scale).
  """
  feature_dim: int
  out_dim: int = 1

  def make_head(self, *, rngs: nnx.Rngs) -> nnx.Module:
    return pytorch_linear(self.feature_dim, self.out_dim, rngs=rngs)
