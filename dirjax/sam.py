"""Sharpness-aware step (Foret et al., ICLR 2021) as BSAM uses it (Liu et al., ICCV 2025).

Reference: manmanjun/BSAM_for_Imbalanced_Regression, `agedb/train.py` (the two passes per step, the
`SAM` class): on one batch,

    g = ∇L(θ);   ε = ρ·g / (‖g‖₂ + 1e-16);   g̃ = ∇L(θ + ε);   θ ← base_update(θ, g̃)

with the same per-sample weights in both passes (BSAM: inverse-√-frequency, `config.reweight`).
`‖g‖` is the global norm over the trainable parameters (the reference's parameters with a gradient;
frozen ones of `config.train_only` are neither counted nor perturbed). Both passes run the model in
training mode, so BatchNorm running statistics are updated twice per step, the second time at the
perturbed weights, as the reference. The base update (`config.optimizer`, e.g. SGD with momentum
and coupled weight decay) sees only `g̃`; weight decay is not part of the ascent.
Switch: `config.optimizer.sam_rho` (0 = a plain step).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx


def check_rho(rho: float) -> float:
  if not (isinstance(rho, (int, float)) and rho >= 0):
    raise ValueError(f"optimizer.sam_rho must be a number >= 0 (0 = no sharpness-aware step), got {rho!r}")
  return float(rho)


def value_and_grad(loss_fn: Callable[[Any], tuple[jax.Array, Any]], model: nnx.Module, rho: float,
                   trainable: Callable[[Any], Any] | None = None) -> tuple[tuple[jax.Array, Any], Any]:
  """((loss, aux) at θ, gradient at θ + ε) of `loss_fn(model)`; with ρ = 0 the plain gradient at θ.

  `trainable(grads)` gives a pytree of bools (True = perturbed and counted in ‖g‖), None = all.
  The model's parameters are θ again on return; its other state (BatchNorm) keeps the second pass's update.
  """
  grad_fn = nnx.value_and_grad(loss_fn, has_aux=True)
  (value, aux), grads = grad_fn(model)
  if check_rho(rho) == 0:
    return (value, aux), grads
  if trainable is not None:
    keep = trainable(grads)
    grads = jax.tree.map(lambda g, k: g if k else jnp.zeros_like(g), grads, keep)
  scale = rho / (optax.tree.norm(grads) + 1e-16)
  params = jax.tree.map(lambda p: p, nnx.state(model, nnx.Param))  # a snapshot (the State holds the live Variables)
  nnx.update(model, jax.tree.map(lambda p, g: p + scale * g, params, grads))
  _, perturbed_grads = grad_fn(model)
  nnx.update(model, params)
  return (value, aux), perturbed_grads
