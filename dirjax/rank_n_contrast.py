"""Rank-N-Contrast (Zha, Cao, Son, Yang, Katabi, NeurIPS 2023): the RnC loss over two augmented views.

With n = 2B anchors (both views of the batch), raw (unnormalised) features v, label distance
D_ij = Σ_k |y_ik − y_jk| and similarity s_ij = −‖v_i − v_j‖₂ / τ (paper Eq. 2; kaiwenzha/Rank-N-Contrast
`loss.py` L41–69):

  L_RnC = 1/(n(n−1)) Σ_i Σ_{j≠i} [ −s_ij + log Σ_{k≠i, D_ik ≥ D_ij} exp(s_ik) ]

ties included (j is in its own contrast set). The reference builds an [n, n−1] mask per column and an
[n, n, d] difference tensor: O(n³) memory. Here each anchor row is sorted by D (descending) once, the
contrast-set sums are a running log-sum-exp in that order read at the end of each tie group, and the
distances come from the Gram matrix: exact, O(n² log n) time and O(n² + n·d) memory. Padding rows are
neither anchors nor in any contrast set; n counts the valid anchors.

Training (`configs/agedb_rnc.py`): stage 1 pre-trains the encoder with this term alone (`loss.name="none"`),
stage 2 (`configs/agedb_rnc_linear.py`) fits a linear head on the frozen encoder (`init_from` + `train_only`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from dirjax.objective import TermInputs

_EXCLUDED = -1e30  # log-weight of a column outside every contrast set (the anchor itself, padding)


def _distances(v: jax.Array) -> jax.Array:
  """[n, n] Euclidean distances from the Gram matrix; the gradient at distance 0 is 0 (as torch's norm)."""
  sq = jnp.sum(jnp.square(v), axis=1)
  d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * (v @ v.T), 0.0)
  d2 = jnp.where(jnp.eye(len(v), dtype=bool), 0.0, d2)
  positive = d2 > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, d2, 1.0)), 0.0)


def rnc_loss(features: jax.Array, labels: jax.Array, valid: jax.Array, *, temperature: float) -> jax.Array:
  """RnC over n anchors: features [n, d], labels [n, k], valid [n] bool. Computed in float32."""
  features = features.astype(jnp.float32)
  n = features.shape[0]
  labels = labels.astype(jnp.float32).reshape(n, -1)
  scores = -_distances(features) / temperature
  label_dist = jnp.sum(jnp.abs(labels[:, None, :] - labels[None, :, :]), axis=-1)
  member = valid[:, None] & valid[None, :] & ~jnp.eye(n, dtype=bool)
  # Per row, columns in descending label distance: the contrast set of the j at sorted position p is
  # every column up to the end of p's tie group.
  order = jnp.argsort(-label_dist, axis=1, stable=True)
  key = jnp.take_along_axis(label_dist, order, axis=1)
  s = jnp.take_along_axis(scores, order, axis=1)
  in_set = jnp.take_along_axis(member, order, axis=1)
  running = jax.lax.cumlogsumexp(jnp.where(in_set, s, _EXCLUDED), axis=1)
  position = jnp.broadcast_to(jnp.arange(n), (n, n))
  group_end = jnp.concatenate([key[:, 1:] != key[:, :-1], jnp.ones((n, 1), bool)], axis=1)
  last_of_group = jax.lax.cummin(jnp.where(group_end, position, n - 1), axis=1, reverse=True)
  log_den = jnp.take_along_axis(running, last_of_group, axis=1)
  pairs = jnp.sum(member)
  return jnp.sum(jnp.where(in_set, log_den - s, 0.0)) / jnp.maximum(pairs, 1)


def build(section: Any, config: Any, bundle: Any):
  """The RnC term of `section`: `weight` and `temperature` (τ, 2 in the reference); needs `data.two_views`."""
  del bundle
  if "temperature" not in section or not section["temperature"] > 0:
    raise ValueError(f"regularizers: rank_n_contrast needs temperature > 0 (2.0 in the reference), got "
                     f"{section.get('temperature')}")
  if not config.data.get("two_views", False):
    raise ValueError("regularizers: rank_n_contrast contrasts two augmented views: set data.two_views=True")
  temperature, weight = float(section["temperature"]), float(section.get("weight", 1.0))

  def term(inputs: TermInputs) -> jax.Array:
    if inputs.features.ndim != 2:
      raise ValueError(f"rank_n_contrast needs vector features [B, D], got {inputs.features.shape}")
    second = inputs.model(inputs.batch["inputs_view2"], inputs.targets, inputs.epoch)
    valid = inputs.batch["valid"]
    features = jnp.concatenate([inputs.features, second.features])
    labels = jnp.concatenate([inputs.targets, inputs.targets])
    return weight * rnc_loss(features, labels, jnp.concatenate([valid, valid]), temperature=temperature)

  return term
