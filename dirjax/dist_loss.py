"""Dist Loss (Nie, Tang & Hong, ICLR 2025): soft-sorted batch predictions matched to pseudo-labels
drawn from the training-label KDE.

Reference: Ngk03/DIR-Dist-Loss, `agedb-dir/loss_utils.py` (pseudo-labels), `agedb-dir/dist_loss.py`
(loss), vendored `fast_soft_sort/` (soft sort of Blondel et al., ICML 2020, L2 regularisation).

Term (added to the main loss `config.loss`, which is the reference's plain `ℓ(ŷ_i, y_i)·w_i` part):

    λ · mean_i w_i · ℓ(ŝ_i, t_i)

* `t` (pseudo-labels): a Gaussian KDE of the training labels in `[min_label, max_label]` (bandwidth
  `bw_method`, a factor on the label std as `scipy.stats.gaussian_kde`) evaluated on the grid
  `min_label + k·step`, turned into integer counts for `n` draws with the reference's rounding
  (lower / upper tails lumped, round half to even, residual spread around the largest count) and
  expanded in ascending order. Built on the host once per valid-row count `n = 1..batch_size`, so
  the padded last batch gathers its own row (`docs/deviations.md` row 62).
* `ŝ` = `soft_sort(ŷ, ε)`: ascending soft sort with L2 regularisation strength `ε`; equals the hard
  sort while every gap between consecutive sorted predictions is ≤ 1/ε.
* `w_i` in batch order multiplies the i-th *sorted* position, as the reference (weights are not
  permuted with the sort).

`ℓ` is a regression loss of `dirjax.losses` (`l1` default, as `--loss l1`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dirjax import losses


def _soft_sort_sorted(ascending: jax.Array, valid: jax.Array, strength: float) -> jax.Array:
  """The L2 soft sort of an ascending vector whose first `n = Σ valid` entries count (the rest returned
  as is): `ŝ = u* − ramp` with `u*` the decreasing isotonic regression of `z = a + ramp`,
  `ramp_i = (n − 1 − i)/ε`, by the min–max formula u*_i = min_{j ≤ i} max_{i ≤ k < n} mean(z_j..z_k)
  (Barlow et al. 1972), O(B²) and branch-free.

  The formula only picks each output's pooled block [j*, k*]; the value is then re-assembled as
  mean(a_j*..a_k*) + ((i − j*) + (i − k*))/(2ε), so float32 keeps the precision of the predictions,
  not of the ramp (≈ B/ε). Its gradient routes each output to the mean of its block, as PAV's VJP."""
  size = ascending.shape[0]
  idx = jnp.arange(size)
  j, k = idx[:, None], idx[None, :]
  count = jnp.maximum(jnp.sum(valid), 1)
  shift = jnp.sum(jnp.where(valid, ascending, 0.0)) / count
  cums = jnp.concatenate([jnp.zeros((1,), ascending.dtype), jnp.cumsum(jnp.where(valid, ascending - shift, 0.0))])
  block_mean = (cums[k + 1] - cums[j]) / jnp.maximum(k - j + 1, 1).astype(ascending.dtype) + shift
  block_mean = jnp.where(j == k, ascending[j], block_mean)  # exact on the diagonal
  ramp_mean = (count - 1 - (j + k) / 2) / strength
  usable = (k >= j) & valid[None, :]
  z_mean = jax.lax.stop_gradient(jnp.where(usable, block_mean + ramp_mean, -jnp.inf))
  upper = jax.lax.cummax(z_mean, axis=1, reverse=True)  # max over k >= i, per j
  first = jnp.argmin(jnp.where(j <= k, upper, jnp.inf), axis=0)  # j*(i)
  row = z_mean[first]  # [i, k]
  last = jnp.argmax(jnp.where(k >= idx[:, None], row, -jnp.inf), axis=1)  # k*(i)
  soft = block_mean[first, last] + ((idx - first) + (idx - last)) / (2 * strength)
  return jnp.where(valid, soft, ascending)


def soft_sort(values: jax.Array, regularization_strength: float, mask: jax.Array | None = None) -> jax.Array:
  """Ascending soft sort of a vector [B] (Blondel et al. 2020, L2): the projection of `ρ` onto the
  permutahedron of `values` (`_soft_sort_sorted` on the hard ascending sort). Masked-out entries come last,
  unchanged and in batch order. ε → 0 gives the hard sort."""
  if not regularization_strength > 0:
    raise ValueError(f"regularization_strength must be > 0, got {regularization_strength}")
  size = values.shape[0]
  valid = jnp.ones((size,), bool) if mask is None else mask.astype(bool)
  order = jnp.argsort(jnp.where(valid, values, jnp.inf), stable=True)
  ascending, valid_sorted = values[order], valid[order]
  return _soft_sort_sorted(ascending, valid_sorted, regularization_strength)


def pseudo_label_counts(density: np.ndarray, draws: int) -> np.ndarray:
  """Integer counts per grid point for `draws` samples of the normalised `density` (reference
  `loss_utils.py`): tails lumped at the first / last grid point whose cumulative expected count
  reaches 1, middle counts rounded half to even, residual `draws − Σ` spread as a run of ±1 around
  the first largest count (or, beyond ⌊K/2⌋, ⌊r/R⌋ on R entries plus the remainder on the largest).
  Returns None where the construction has no answer (no tail reaches 1, a negative count)."""
  expected = draws * density
  size = len(expected)
  head = np.nonzero(np.cumsum(expected) >= 1)[0]
  tail = np.nonzero(np.cumsum(expected[::-1])[::-1] >= 1)[0]
  if not len(head) or not len(tail):
    return None
  first, last = head[0], tail[-1]
  counts = np.zeros(size, np.int64)
  counts[first + 1:last] = np.round(expected[first + 1:last])
  counts[first] = np.round(expected[:first + 1].sum())
  counts[last] = np.round(expected[last:].sum())
  residual, peak, span = draws - counts.sum(), int(np.argmax(counts)), size // 2
  if abs(residual) <= span:
    counts[slice(peak - abs(residual) // 2, peak - abs(residual) // 2 + abs(residual))] += np.sign(residual)
  else:
    counts[slice(peak - span // 2, peak - span // 2 + span)] += (residual // span) * np.sign(residual)
    counts[peak] += residual % span
  if (counts < 0).any() or counts.sum() != draws:
    return None
  return counts


def kde_density(labels: np.ndarray, grid: np.ndarray, bw_method: float) -> np.ndarray:
  """Gaussian KDE of `labels` on `grid`, normalised to sum 1 (kernel std `bw_method`·std(labels, ddof 1),
  as `scipy.stats.gaussian_kde(labels, bw_method)` with a scalar)."""
  h = bw_method * np.std(labels, ddof=1)
  z = (grid[:, None] - labels[None, :]) / h
  density = np.exp(-0.5 * z * z).sum(axis=1)
  return density / density.sum()


def pseudo_label_table(labels: np.ndarray, batch_size: int, bw_method: float, min_label: float,
                       max_label: float, step: float) -> np.ndarray:
  """[batch_size, batch_size] float32: row n−1 holds the n ascending pseudo-labels of a batch with n
  valid rows (then padding). Where the reference rounding has no answer (n = 1, a negative count),
  the row holds the KDE's mid-quantiles (k + ½)/n on the grid (`docs/deviations.md` row 62)."""
  labels = np.asarray(labels, np.float64).ravel()
  labels = labels[(labels >= min_label) & (labels <= max_label)]
  if len(labels) < 2 or np.std(labels) == 0:
    raise ValueError(f"Dist Loss needs at least two distinct training labels in [{min_label}, {max_label}]; "
                     f"got {len(labels)} label(s) there; widen min_label/max_label")
  grid = np.arange(min_label, max_label + step, step)
  density = kde_density(labels, grid, bw_method)
  cdf = np.cumsum(density)
  table = np.zeros((batch_size, batch_size), np.float32)
  for n in range(1, batch_size + 1):
    counts = pseudo_label_counts(density, n)
    if counts is None:
      row = grid[np.minimum(np.searchsorted(cdf, (np.arange(n) + 0.5) / n), len(grid) - 1)]
    else:
      row = np.repeat(grid, counts)
    table[n - 1, :n] = row
  return table


def build(section: Any, config: Any, bundle: Any):
  """The Dist Loss term of `section` (keys: weight λ, regularization_strength ε, bw_method, min_label,
  max_label, step, loss ℓ) for batches of `config.batch_size`."""
  weight = section.get("weight", 1.0)
  strength = section.get("regularization_strength", 0.1)
  bw_method = section.get("bw_method", 0.5)
  min_label, max_label, step = section.get("min_label", 0.0), section.get("max_label", 120.0), section.get("step", 1.0)
  if not (isinstance(bw_method, (int, float)) and bw_method > 0):
    raise ValueError(f"dist_loss.bw_method must be a positive number (a factor on the label std, as "
                     f"scipy.stats.gaussian_kde); got {bw_method!r}")
  if not strength > 0:
    raise ValueError(f"dist_loss.regularization_strength must be > 0 (ε of the soft sort), got {strength}")
  if not (step > 0 and max_label > min_label):
    raise ValueError(f"dist_loss needs step > 0 and max_label > min_label; got step={step}, "
                     f"min_label={min_label}, max_label={max_label}")
  loss = losses.get_loss(section.get("loss", "l1"))
  table = jnp.asarray(pseudo_label_table(bundle.train_labels, config.batch_size, bw_method, min_label,
                                         max_label, step))

  def term(inputs) -> jax.Array:
    preds = inputs.preds
    if preds.ndim != 2 or preds.shape[-1] != 1:
      raise ValueError(f"dist_loss needs scalar predictions [B, 1]; got shape {preds.shape}")
    if preds.shape[0] != table.shape[0]:
      raise ValueError(f"dist_loss was built for batch_size {table.shape[0]}, got a batch of {preds.shape[0]}")
    mask = inputs.mask
    pseudo = table[jnp.maximum(jnp.sum(mask), 1) - 1][:, None]
    soft = soft_sort(preds[:, 0], strength, mask)[:, None]
    # The valid rows come first after the sort; weights stay in batch order (reference).
    first_n = jnp.arange(mask.shape[0]) < jnp.sum(mask)
    weights = None if inputs.weights is None else jnp.where(mask, inputs.weights.reshape(-1), 0.0)
    if weights is not None:  # the valid rows' weights, in batch order, onto the first n positions
      weights = weights[jnp.argsort(~mask.astype(bool), stable=True)]
    return weight * loss(soft, pseudo, weights=weights, mask=first_n)

  return term
