"""UVOTE: M regression heads with a Laplace NLL, head m re-weighted by n_bin^(−r_m), prediction from the
head with the smallest predicted uncertainty (Jiang et al., "Uncertainty voting ensemble for imbalanced
deep regression", GCPR 2024; SherryJYC/UVOTE `agedb-dir/`).

* `UvoteHead` (`config.head = {"name": "uvote", "num_heads": M}`): M pairs of linear maps on the shared
  features, μ_m = A_m h and s_m = C_m h (s is the log of a Laplace scale; `resnet_var_morebranch.py`
  L87–196). It returns the μ of the head with the smallest s per sample and that head's Laplace std
  √2·exp(s) (`validate_mul`, rule "minvar").
* `build` (`config.loss = {"name": "uvote", ...}`): the objective's main term
  L = c₀(e) L₀ + (1 − α_e) Σ_{m≥1} L_m, α_e = 1 − (e/E)², with
  L_m = mean_i w_{m,i} [log 2b_{m,i} + |y_i − μ_{m,i}| / b_{m,i}], b = exp(clip(s, lo, hi)) + 1e-10
  (`loss.py` L4–20, `train_gradual.py` L353–370); c₀ = 1 (AgeDB) or α_e (`head0_dynamic`, IMDB-WIKI).
  Without `dynamic` every head has weight 1.
* `head_weight_tables`: w_m = 1/c_m per label bin, c_m = n^{r_m}, r_m = linspace(0, 1, M)[m], the
  r_m ≥ 1 head's c clipped to [5, 1000] (`datasets_gradual.py` L27–32, L74–101), each head's table
  scaled to mean 1 over the training samples.
* The log-scale layers train at 0.1·lr on the main schedule (`train_gradual.py` L207–215, `utils.py`
  `adjust_learning_rate`): `config.optimizer.lr_scales = {"head/log_scale": 0.1}` in every UVOTE config. At the
  full lr, s grows with the early errors, b = exp(s) scales the mean's gradient sign(μ − y)/b down and head 0
  never fits the tail (docs/reproduction.md, "Uncertainty heads").
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dirjax import weighting

SCALE_EPS = 1e-10   # `loss.py`: b = exp(s) + 1e-10
COUNT_CLIP = (5.0, 1000.0)  # `datasets_gradual.py`: clip of the inverse-frequency head's counts


def check_num_heads(num_heads: Any) -> int:
  if isinstance(num_heads, bool) or not isinstance(num_heads, (int, np.integer)) or num_heads < 1:
    raise ValueError(f"uvote num_heads must be an integer >= 1, got {num_heads!r}")
  return int(num_heads)


class UvoteHead(nnx.Module):
  """M heads (μ_m, s_m) = (A_m h, C_m h), weights N(0, 0.01²) and zero bias (AgeDB `_initialize_weights`)."""

  def __init__(self, feature_dim: int, num_heads: int, *, rngs: nnx.Rngs):
    self.num_heads = check_num_heads(num_heads)
    init = nnx.initializers.normal(0.01)
    self.mean = nnx.Linear(feature_dim, self.num_heads, kernel_init=init, rngs=rngs)
    self.log_scale = nnx.Linear(feature_dim, self.num_heads, kernel_init=init, rngs=rngs)

  def heads(self, features: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(μ, s), each [B, M]: every head's mean and (unclipped) log Laplace scale."""
    return self.mean(features), self.log_scale(features)

  def __call__(self, features: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(prediction [B, 1], Laplace std √2·exp(s) [B, 1]) of the head with the smallest s per sample."""
    return select_min_uncertainty(*self.heads(features))


def select_min_uncertainty(mean: jax.Array, log_scale: jax.Array) -> tuple[jax.Array, jax.Array]:
  """μ_{m*} and √2·exp(s_{m*}) with m* = argmin_m s_m per row (ties: the lowest m), each [B, 1]."""
  best = jnp.argmin(log_scale, axis=-1)[:, None]
  pick = lambda a: jnp.take_along_axis(a, best, axis=-1)
  return pick(mean), jnp.sqrt(2.0) * jnp.exp(pick(log_scale))


def head_exponents(num_heads: int) -> np.ndarray:
  """r_m = linspace(0, 1, M) (`train_gradual.py` L89 sets the re-weighting from `num_branch`)."""
  return np.linspace(0.0, 1.0, check_num_heads(num_heads))


def head_weight_tables(train_labels: np.ndarray, binning: weighting.Binning, exponents: Any) -> np.ndarray:
  """[M, num_bins] float32: w_m(b) = 1/c_m(b), c_m = n_b^{r_m} (clipped to [5, 1000] when r_m ≥ 1), each
  row scaled so that its mean over the training samples is 1. Empty bins get weight 0 (no training
  sample looks them up; the reference's 1/0 there is never read either)."""
  exponents = np.asarray(exponents, np.float64)
  if exponents.ndim != 1 or exponents.size < 1 or not np.all(np.isfinite(exponents)) or np.any(exponents < 0):
    raise ValueError(f"uvote exponents r must be a non-empty 1-D list of finite values >= 0, got {exponents.tolist()}")
  counts = weighting.label_histogram(train_labels, binning).astype(np.float64)
  occupied = counts > 0
  tables = []
  for r in exponents:  # M tables on the host, once
    c = np.power(counts, r)
    if r >= 1:
      c = np.clip(c, *COUNT_CLIP)
    w = np.where(occupied, 1.0 / np.where(occupied, c, 1.0), 0.0)
    tables.append(w * counts.sum() / np.sum(w * counts))
  return np.stack(tables).astype(np.float32)


def laplace_nll(mean: jax.Array, log_scale: jax.Array, target: jax.Array, weights: jax.Array, mask: jax.Array,
                clip: tuple[float, float]) -> jax.Array:
  """[M] per-head weighted mean over valid rows of log 2b + |y − μ|/b, b = exp(clip(s)) + 1e-10.

  mean, log_scale, weights: [B, M]; target [B, 1]; mask [B]. A hard clip: zero gradient to s outside it."""
  b = jnp.exp(jnp.clip(log_scale, *clip)) + SCALE_EPS
  nll = jnp.log(2.0 * b) + jnp.abs(target - mean) / b
  valid = mask.astype(nll.dtype)[:, None]
  per_row = jnp.where(valid > 0, weights * nll, 0.0)
  return jnp.sum(per_row, axis=0) / jnp.maximum(jnp.sum(valid), 1.0)


def head_factors(epoch: jax.Array, num_epochs: int, num_heads: int, dynamic: bool, head0_dynamic: bool) -> jax.Array:
  """[M] factor of each head's NLL: α_e = 1 − (e/E)² on head 0 when `head0_dynamic`, 1 − α_e on the others
  when `dynamic` (`train_gradual.py` L353–370)."""
  alpha = 1.0 - jnp.square(jnp.asarray(epoch, jnp.float32) / num_epochs)
  first = alpha if head0_dynamic else jnp.ones((), jnp.float32)
  rest = (1.0 - alpha) if dynamic else jnp.ones((), jnp.float32)
  return jnp.concatenate([first[None], jnp.broadcast_to(rest, (num_heads - 1,))])


def build(section: Any, config: Any, bundle: Any):
  """The UVOTE objective term of `config.loss` (name "uvote"): keys `exponents` (r per head, default
  linspace(0, 1, M)), `log_scale_clip` (AgeDB (−5, 5), IMDB-WIKI (−5, 10)), `dynamic`, `head0_dynamic`.
  The model must have the `UvoteHead` (`config.head`)."""
  head = config.get("head") or {}
  if head.get("name") != "uvote":
    raise ValueError("loss.name='uvote' needs config.head = {'name': 'uvote', 'num_heads': M}")
  num_heads = check_num_heads(head["num_heads"])
  exponents = section.get("exponents") or head_exponents(num_heads)
  if len(exponents) != num_heads:
    raise ValueError(f"loss.exponents has {len(exponents)} values; config.head.num_heads is {num_heads}: give one r per head")
  if section.get("kwargs"):
    raise ValueError(f"loss 'uvote' takes no kwargs, got {dict(section.kwargs)}")
  lo, hi = section.get("log_scale_clip", (-5.0, 5.0))
  if not lo < hi:
    raise ValueError(f"loss.log_scale_clip must be (low, high) with low < high, got {(lo, hi)}")
  if config.reweight.method != "none":
    raise ValueError("loss 'uvote' weights each head by its own n^(−r); set reweight.method='none'")
  tables = jnp.asarray(head_weight_tables(bundle.train_labels, bundle.binning, exponents))
  binning, num_epochs = bundle.binning, int(config.num_epochs)
  dynamic, head0_dynamic = bool(section.get("dynamic", True)), bool(section.get("head0_dynamic", False))

  def term(inputs) -> jax.Array:
    mean, log_scale = inputs.model.head.heads(inputs.calibrated)
    weights = tables[:, binning.index(inputs.targets[:, 0])].T  # [B, M]
    per_head = laplace_nll(mean, log_scale, inputs.targets, weights, inputs.mask, (lo, hi))
    return jnp.sum(head_factors(inputs.epoch, num_epochs, num_heads, dynamic, head0_dynamic) * per_head)

  return term
