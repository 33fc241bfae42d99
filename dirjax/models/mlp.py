"""Fully connected encoder: the tutorial's FCNet and, with ``hidden=()``, the synthetic linear model."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from dirjax.models.base import Encoder, pytorch_linear

ACTIVATIONS = {"relu": nnx.relu, "gelu": nnx.gelu, "tanh": jnp.tanh, "silu": nnx.silu}


class MLP(Encoder):
  """``in_features → hidden...`` (the head maps to ``out_dim``); PyTorch's default Linear init.

  The tutorial's FCNet is ``MLP(13, (256, 256, 256), 1)``. The features are the last hidden
  activation (after dropout), or the input itself when ``hidden=()``.
  """

  def __init__(
      self,
      in_features: int,
      hidden: Sequence[int] = (256, 256, 256),
      out_dim: int = 1,
      activation: str = "relu",
      dropout: float = 0.0,
      *,
      rngs: nnx.Rngs,
  ):
    if activation not in ACTIVATIONS:
      raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    if not 0.0 <= dropout < 1.0:
      raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    widths = (in_features, *hidden)
    self.layers = nnx.List(
      [pytorch_linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])
    self.activation = activation
    self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout > 0 else None
    self.feature_dim, self.out_dim = widths[-1], out_dim

  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim != 2:
      raise ValueError(f"MLP expects inputs [B, in_features], got shape {x.shape}")
    act = ACTIVATIONS[self.activation]
    h = x
    for layer in self.layers:
      h = act(layer(h))
    if self.dropout is not None:
      h = self.dropout(h)
    return h
