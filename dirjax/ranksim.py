"""RankSim: the rank-similarity regulariser (Gong, Mori, Tung, ICML 2022, Eq. 2–4).

For the samples of a batch, the ranking of every sample's neighbours in feature space (cosine
similarity of the L2-normalised features) is pulled towards their ranking in label space
(−|y_i − y_j|):

  L_RS = Σ_i (1/m) Σ_j (rk(S_i·)_j − rk(A_i·)_j)²,   S_ij = ẑ_i·ẑ_j,  A_ij = −|y_i − y_j|,  rk(v) = (rank(v) + 1)/m

over the m samples kept by drawing one sample uniformly at random per distinct label of the batch
(all of them when the labels are distinct), as BorealisAI/ranksim-imbalanced-regression
`agedb-dir/ranksim.py` L14–39. rank() is the descending rank (0 for the largest entry). The ranking of
S has no derivative; its gradient is the blackbox combinatorial one (Vlastelica et al., ICLR 2020),
`ranking.py` L21–36: with the incoming cotangent g, rank again at S + λ·g and return
(rk(S + λg) − rk(S))/(λ + 1e-8). The term is γ·L_RS, so γ and the 2/m of the squared error are in the
cotangent and thus inside the perturbation, as in the reference (whose total loss is L + γ·L_RS);
the regulariser's gradient is not linear in γ.

Static shapes: the kept subset is a mask over the B rows (the reference's Python loop over labels is
gone), masked entries rank last and every mean and the normaliser m count kept rows only. Padding
rows (`inputs.mask`) are never kept. Under `jit` on a sharded batch the term sees the whole global
batch (B × B matrices), so its value does not depend on the number of devices.

Choices where the reference is unspecified or host-side (docs/deviations.md, "Representation
regularisers"):
* features are the raw encoder output `inputs.features`, *before* FDS smoothing, as the reference
  (its FDS smooths only the copy that feeds the head);
* ties in a ranking (frequent in the label ranking: ages a−k and a+k) go to the larger label first,
  the deterministic rule of the reference's STS-B copy (`sts-b-dir/ranking.py`), where the AgeDB copy's
  unstable `argsort` leaves the order to the sorting kernel;
* the sample per label is drawn with `inputs.rng` (same distribution; the reference uses Python's
  global `random`).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from dirjax import objective

_BLACKBOX_EPS = 1e-8  # ranking.py: the backward divides by λ + 1e-8
_NORMALIZE_EPS = 1e-12  # F.normalize's default


def l2_normalize(x: jax.Array) -> jax.Array:
  """Rows of `x` over max(‖x‖₂, 1e-12) (PyTorch's `F.normalize`), with a finite gradient at zero rows."""
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=-1, keepdims=True), _NORMALIZE_EPS**2))


def descending_ranks(scores: jax.Array, tiebreak: jax.Array, valid: jax.Array) -> jax.Array:
  """(rank + 1)/m of every row of `scores` [R, B] in descending order, m = Σ valid.

  Ties go to the larger `tiebreak` [B] first; columns with `valid` False rank after every valid one
  (their values are meaningless). Returns float32 [R, B] with valid entries in {1/m, …, 1}.
  """
  rows, cols = scores.shape
  # Sort ascending on (−score, −tiebreak), invalid last: the position in this order is the rank.
  primary = jnp.where(valid[None, :], -scores, jnp.inf)
  secondary = jnp.broadcast_to(-tiebreak, (rows, cols))
  index = jnp.broadcast_to(jnp.arange(cols), (rows, cols))
  _, _, order = jax.lax.sort((primary, secondary, index), dimension=1, num_keys=2)
  rank = jnp.zeros((rows, cols), jnp.int32).at[jnp.arange(rows)[:, None], order].set(
    jnp.broadcast_to(jnp.arange(cols, dtype=jnp.int32), (rows, cols)))
  m = jnp.maximum(jnp.sum(valid), 1).astype(jnp.float32)
  return (rank.astype(jnp.float32) + 1.0) / m


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def blackbox_ranks(interpolation: float, scores: jax.Array, tiebreak: jax.Array, valid: jax.Array) -> jax.Array:
  """`descending_ranks(scores, …)` with the blackbox gradient of interpolation strength λ:
  ∂/∂scores = (ranks(scores + λ·g) − ranks(scores))/(λ + 1e-8) for the cotangent g."""
  return descending_ranks(scores, tiebreak, valid)


def _blackbox_forward(interpolation, scores, tiebreak, valid):
  ranks = descending_ranks(scores, tiebreak, valid)
  return ranks, (scores, tiebreak, valid, ranks)


def _blackbox_backward(interpolation, residuals, cotangent):
  scores, tiebreak, valid, ranks = residuals
  perturbed = descending_ranks(scores + interpolation * cotangent.astype(scores.dtype), tiebreak, valid)
  grad = (perturbed - ranks) / (interpolation + _BLACKBOX_EPS)
  return grad.astype(scores.dtype), jnp.zeros_like(tiebreak), None


blackbox_ranks.defvjp(_blackbox_forward, _blackbox_backward)


def one_per_label(labels: jax.Array, valid: jax.Array, rng: jax.Array) -> jax.Array:
  """Mask [B] keeping one valid row per distinct label, uniform within each label's rows: the row with
  the largest uniform key among the rows of its label (ties in the key to the lower index)."""
  keys = jax.random.uniform(rng, labels.shape)
  index = jnp.arange(labels.shape[0])
  same = (labels[:, None] == labels[None, :]) & valid[None, :]
  beaten = same & ((keys[None, :] > keys[:, None]) | ((keys[None, :] == keys[:, None]) & (index[None, :] < index[:, None])))
  return valid & ~jnp.any(beaten, axis=1)


def ranksim_loss(features: jax.Array, labels: jax.Array, keep: jax.Array, interpolation: float) -> jax.Array:
  """L_RS (unweighted) over the rows `keep` of `features` [B, D] and `labels` [B]."""
  z = l2_normalize(features)
  similarity = jnp.matmul(z, z.T, precision=jax.lax.Precision.HIGHEST)
  label_scores = -jnp.abs(labels[:, None] - labels[None, :])
  target = jax.lax.stop_gradient(descending_ranks(label_scores, labels, keep))
  ranks = blackbox_ranks(interpolation, similarity, labels, keep)
  both = (keep[:, None] & keep[None, :]).astype(ranks.dtype)
  m = jnp.maximum(jnp.sum(keep), 1).astype(ranks.dtype)
  return jnp.sum(jnp.square(ranks - target) * both) / m


def build(section: ml_collections.ConfigDict, config: ml_collections.ConfigDict, bundle: Any) -> objective.Term:
  """γ·L_RS of `section` (`weight` γ, `interpolation` λ; the READMEs use γ = 100, λ = 2 on the age
  benchmarks and γ = 3e-4 on STS-B-DIR)."""
  del config, bundle
  weight, interpolation = float(section.get("weight", 100.0)), float(section.get("interpolation", 2.0))
  if weight < 0:
    raise ValueError(f"ranksim: weight (γ) must be >= 0, got {weight}; the RankSim READMEs use 100 (age) or 3e-4 (STS-B)")
  if interpolation <= 0:
    raise ValueError(f"ranksim: interpolation (λ) must be > 0, got {interpolation}; the RankSim READMEs use 2")

  def ranksim(inputs: objective.TermInputs) -> jax.Array:
    labels, features = objective.scalar_labels_and_features("ranksim", inputs)
    keep = one_per_label(labels, inputs.mask.astype(bool), inputs.rng)
    return weight * ranksim_loss(features, labels, keep, interpolation)

  return ranksim
