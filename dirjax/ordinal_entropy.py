"""Ordinal entropy (Zhang et al., ICLR 2023, Eq. 4–7): a feature regulariser for regression.

With the distinct labels u_1 < … < u_M of the batch, the centre of label k is the mean of the raw
features of its samples, p_k = μ_k/‖μ_k‖ (needylove/OrdinalEntropy `AgeEstimation/OrdinalEntropy.py`,
HEAD 75fc9d5). The term is weight · (L_tight − L_div):

  L_div   = mean_{k<l} ω̃_kl ‖p_k − p_l‖,   ω_kl = |u_k − u_l|,  ω̃ = (ω − min ω)/max ω   (min, max over k<l)
  L_tight = mean_{b: e_b>0} √e_b,          e_b = ‖f_b/‖f_b‖ − p_{c(b)}‖²

Both distances use the reference's expanded form √max(‖a‖² + ‖b‖² − 2a·b, 1e-12) (the clamp also stops
the gradient of near-identical centres); ω̃ is divided by max ω, not by the range, so the closest pair
of labels weighs 0; the tightness keeps only e_b > 0 (singleton labels drop out). `sqrt_tightness=False`
is the repository's first upload (4a4dd5f, the paper's era): mean of e_b without the square root.
The reference adds it with weight 1 (its README: `loss = loss + oe_loss`).

Static shapes: distinct labels by a sort and a segment sum into B slots; empty slots and padding rows
(`inputs.mask`) are masked, every mean counts valid entries only. Features are the encoder's
`inputs.features` (before FDS, the reference's `encoding`). Where the reference fails (one distinct
label: an exception; all labels distinct: NaN tightness) the missing part counts 0 here
(docs/deviations.md, "Representation regularisers").
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from dirjax import objective
from dirjax.ranksim import l2_normalize

_CLAMP = 1e-12  # euclidean_dist's clamp before the sqrt


def _pairwise_distance(x: jax.Array) -> jax.Array:
  """√max(‖x_k‖² + ‖x_l‖² − 2 x_k·x_l, 1e-12) for the rows of x [K, D] (the reference's expanded form)."""
  sq = jnp.sum(jnp.square(x), axis=-1)
  gram = jnp.matmul(x, x.T, precision=jax.lax.Precision.HIGHEST)
  return jnp.sqrt(jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, _CLAMP))


def label_groups(labels: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(group [B], slot_valid [B]): the index of each row's label among the sorted distinct valid labels
  (padding rows point at an unused slot or carry garbage that every use masks), and which of the B
  slots hold a label."""
  order = jnp.argsort(jnp.where(valid, labels, jnp.inf))
  sorted_labels, sorted_valid = labels[order], valid[order]
  new = sorted_valid & jnp.concatenate([jnp.ones((1,), bool), sorted_labels[1:] != sorted_labels[:-1]])
  group_sorted = jnp.cumsum(new) - 1
  group = jnp.zeros_like(group_sorted).at[order].set(group_sorted)
  group = jnp.where(valid, group, labels.shape[0] - 1)
  slot_valid = jnp.arange(labels.shape[0]) < jnp.sum(new)
  return group, slot_valid


def ordinal_entropy_loss(features: jax.Array, labels: jax.Array, valid: jax.Array,
                         sqrt_tightness: bool = True) -> jax.Array:
  """L_tight − L_div of `features` [B, D] and `labels` [B] over the rows `valid`."""
  size = labels.shape[0]
  group, slot_valid = label_groups(labels, valid)
  w = valid.astype(features.dtype)
  counts = jax.ops.segment_sum(w, group, num_segments=size)
  safe_counts = jnp.maximum(counts, 1.0)
  centres = l2_normalize(jax.ops.segment_sum(features * w[:, None], group, num_segments=size) / safe_counts[:, None])
  values = jax.ops.segment_sum(labels * w, group, num_segments=size) / safe_counts

  pairs = slot_valid[:, None] & slot_valid[None, :] & (jnp.arange(size)[:, None] < jnp.arange(size)[None, :])
  omega = _pairwise_distance(values[:, None])
  omega_max = jnp.max(jnp.where(pairs, omega, -jnp.inf))
  omega_min = jnp.min(jnp.where(pairs, omega, jnp.inf))
  has_pairs = jnp.any(pairs)
  omega_tilde = jnp.where(pairs, (omega - omega_min) / jnp.where(has_pairs, omega_max, 1.0), 0.0)
  diversity = jnp.sum(omega_tilde * _pairwise_distance(centres)) / jnp.maximum(jnp.sum(pairs), 1)

  spread = jnp.sum(jnp.square(l2_normalize(features) - centres[group]), axis=-1)
  kept = valid & (spread > 0)
  per_sample = jnp.sqrt(jnp.where(kept, spread, 1.0)) if sqrt_tightness else spread
  tightness = jnp.sum(jnp.where(kept, per_sample, 0.0)) / jnp.maximum(jnp.sum(kept), 1)
  return tightness - diversity


def build(section: ml_collections.ConfigDict, config: ml_collections.ConfigDict, bundle: Any) -> objective.Term:
  """weight · (L_tight − L_div) of `section` (`weight`, default 1 as the reference README;
  `sqrt_tightness`, default True as the reference HEAD)."""
  del config, bundle
  weight, sqrt_tightness = float(section.get("weight", 1.0)), bool(section.get("sqrt_tightness", True))
  if weight < 0:
    raise ValueError(f"ordinal_entropy: weight must be >= 0, got {weight}; the reference adds the term with weight 1")

  def ordinal_entropy(inputs: objective.TermInputs) -> jax.Array:
    labels, features = objective.scalar_labels_and_features("ordinal_entropy", inputs)
    loss = ordinal_entropy_loss(features, labels, inputs.mask.astype(bool), sqrt_tightness)
    return weight * loss

  return ordinal_entropy
