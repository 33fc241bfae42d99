"""Dist Loss (`dirjax.dist_loss`) against numpy re-derivations of the paper / reference steps:
the KDE against scipy, the pseudo-label rounding of `loss_utils.py` written as a plain loop, the
L2 soft sort of Blondel et al. 2020 by pool-adjacent-violators, the loss value in loop form, its
gradient by finite differences, and jit / 4-device mesh against eager single-device values."""

import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

from dirjax import dist_loss, objective, sharding


def np_pav_decreasing(z):
  """Decreasing isotonic regression by pool-adjacent-violators (block sums and sizes)."""
  blocks = []
  for v in z:
    blocks.append([float(v), 1])
    while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
      total, size = blocks.pop()
      blocks[-1][0] += total
      blocks[-1][1] += size
  return np.concatenate([[s / c] * c for s, c in blocks])


def np_soft_sort(x, eps):
  """Blondel et al. 2020, ascending, L2: s = sort_desc(−x), ρ = (n, …, 1)/ε, −(ρ − PAV_dec(ρ − s))."""
  x = np.asarray(x, np.float64)
  rho = np.arange(len(x), 0, -1) / eps
  s = np.sort(-x)[::-1]
  return -(rho - np_pav_decreasing(rho - s))


def np_pseudo_labels(labels, n, bw, lo, hi, step):
  """The reference's rounding construction, one entry at a time (None where it has no answer)."""
  labels = [v for v in labels if lo <= v <= hi]
  kde = stats.gaussian_kde(np.asarray(labels, np.float64), bw_method=bw)
  grid = np.arange(lo, hi + step, step)
  p = kde(grid)
  p = p / p.sum()
  c = [n * v for v in p]
  K = len(c)
  first = next((k for k in range(K) if sum(c[:k + 1]) >= 1), None)
  last = next((k for k in reversed(range(K)) if sum(c[k:]) >= 1), None)
  if first is None or last is None:
    return None
  q = [0] * K
  for k in range(first + 1, last):
    q[k] = int(np.round(c[k]))
  q[first] = int(np.round(sum(c[:first + 1])))
  q[last] = int(np.round(sum(c[last:])))
  r = n - sum(q)
  a = q.index(max(q))
  R = K // 2
  if abs(r) <= R:
    start = a - abs(r) // 2
    for k in list(range(K))[start:start + abs(r)]:
      q[k] += int(np.sign(r))
  else:
    start = a - R // 2
    for k in list(range(K))[start:start + R]:
      q[k] += (r // R) * int(np.sign(r))
    q[a] += r % R
  if min(q) < 0 or sum(q) != n:  # a negative count, or an empty residual run (negative slice start)
    return None
  out = []
  for k in range(K):
    out += [grid[k]] * q[k]
  return np.asarray(out)


@pytest.fixture(scope="module")
def labels():
  rng = np.random.default_rng(3)
  return np.clip(np.round(rng.exponential(12.0, 400) + 2), 0, 60)  # long-tailed integer labels


def test_kde_density_matches_scipy(labels):
  grid = np.arange(0.0, 61.0)
  expected = stats.gaussian_kde(labels, bw_method=0.5)(grid)
  np.testing.assert_allclose(dist_loss.kde_density(labels, grid, 0.5), expected / expected.sum(), rtol=1e-10)


def test_pseudo_label_table_matches_the_loop_construction(labels):
  table = dist_loss.pseudo_label_table(labels, 48, 0.5, 0.0, 60.0, 1.0)
  constructed = 0
  for n in range(1, 49):
    expected = np_pseudo_labels(labels, n, 0.5, 0.0, 60.0, 1.0)
    if expected is None:  # the reference has no answer: the KDE's mid-quantiles (deviation row 62)
      grid = np.arange(0.0, 61.0)
      cdf = np.cumsum(dist_loss.kde_density(labels, grid, 0.5))
      expected = np.array([grid[min(np.searchsorted(cdf, (i + 0.5) / n), 60)] for i in range(n)])
    else:
      constructed += 1
    np.testing.assert_array_equal(table[n - 1, :n], expected, err_msg=f"n={n}")
    assert np.all(table[n - 1, n:] == 0)
  assert constructed >= 30  # most rows (32 of 48 here) come from the reference rounding, not the fallback


@pytest.mark.parametrize("eps", [1.0, 0.1, 0.01])
def test_soft_sort_matches_pav(eps):
  x = np.random.default_rng(0).normal(50, 20, 16)
  np.testing.assert_allclose(dist_loss.soft_sort(jnp.asarray(x, jnp.float32), eps), np_soft_sort(x, eps),
                             atol=2e-4 * max(1.0, 0.1 / eps))


def test_soft_sort_pools_wide_gaps_and_tends_to_the_sort():
  x = jnp.array([30.0, 5.0, 31.0, 80.0, 29.5])
  # Gaps wider than 1/ε = 10 pool into one centred ramp with step 10.
  np.testing.assert_allclose(dist_loss.soft_sort(x, 0.1), [15.1, 25.1, 35.1, 45.1, 55.1], rtol=1e-6)
  np.testing.assert_allclose(dist_loss.soft_sort(x, 1e-3), np.sort(np.asarray(x)), rtol=1e-6)


def test_soft_sort_masked_rows_sort_last():
  x = np.random.default_rng(1).normal(0, 30, 12)
  mask = np.arange(12) < 9
  out = np.asarray(dist_loss.soft_sort(jnp.asarray(x, jnp.float32), 0.1, jnp.asarray(mask)))
  np.testing.assert_allclose(out[:9], np_soft_sort(x[:9], 0.1), atol=1e-4)
  np.testing.assert_array_equal(out[9:], x[~mask].astype(np.float32))  # unchanged, in batch order


def _term(labels, batch_size, **section):
  section = ml_collections.ConfigDict({"name": "dist_loss", "min_label": 0.0, "max_label": 60.0, **section})
  config = ml_collections.ConfigDict({"batch_size": batch_size})
  return objective.builder_of("dist_loss")(section, config, types.SimpleNamespace(train_labels=labels))


def _inputs(preds, weights, mask):
  return objective.TermInputs(preds=preds, features=None, calibrated=None, targets=None, weights=weights,
                              mask=mask, epoch=None, rng=None, noise_sigma=None, batch={}, model=None)


def np_term(preds, weights, mask, labels, lam, eps):
  """λ · Σ_{i<n} w_i |ŝ_i − t_i| / n: the valid rows' weights in batch order on the sorted positions."""
  n = int(mask.sum())
  soft = np_soft_sort(preds[mask], eps)
  t = np_pseudo_labels(labels, n, 0.5, 0.0, 60.0, 1.0)
  w = weights[mask]
  total = 0.0
  for i in range(n):
    total += w[i] * abs(soft[i] - t[i])
  return lam * total / n


@pytest.fixture(scope="module")
def case():
  rng = np.random.default_rng(5)
  preds = rng.normal(15, 12, 8)
  weights = rng.uniform(0.2, 3.0, 8)
  mask = np.arange(8) < 6  # a padded last batch: 6 valid rows of 8
  return preds, weights, mask


def test_term_value_and_finite_difference_gradient(labels, case):
  preds, weights, mask = case
  term = _term(labels, 8, weight=0.7, regularization_strength=0.1)
  f = lambda p: term(_inputs(p[:, None], jnp.asarray(weights, jnp.float32)[:, None], jnp.asarray(mask)))
  p32 = jnp.asarray(preds, jnp.float32)
  np.testing.assert_allclose(float(f(p32)), np_term(preds, weights, mask, labels, 0.7, 0.1), rtol=1e-5)
  grad = np.asarray(jax.grad(f)(p32))
  h = 1e-3
  for i in range(8):
    e = np.zeros(8)
    e[i] = h
    fd = (np_term(preds + e, weights, mask, labels, 0.7, 0.1) - np_term(preds - e, weights, mask, labels, 0.7, 0.1)) / (2 * h)
    np.testing.assert_allclose(grad[i], fd, atol=1e-4, err_msg=f"row {i}")
  assert np.all(grad[~mask] == 0)


def test_term_under_jit_and_on_a_4_device_mesh(labels, case):
  preds, weights, mask = case
  term = _term(labels, 8)
  args = (jnp.asarray(preds, jnp.float32)[:, None], jnp.asarray(weights, jnp.float32)[:, None], jnp.asarray(mask))
  eager = float(term(_inputs(*args)))
  value_and_grad = jax.jit(jax.value_and_grad(lambda p, w, m: term(_inputs(p, w, m))))
  jitted, grad1 = value_and_grad(*args)
  mesh = sharding.make_mesh()  # the trainer's mesh: 4 devices, batch split over "data"
  sharded = [jax.device_put(a, sharding.data_sharding(mesh)) for a in args]
  assert len(sharded[0].sharding.device_set) == 4
  on_mesh, grad4 = value_and_grad(*sharded)
  np.testing.assert_allclose(float(jitted), eager, rtol=1e-6)
  np.testing.assert_allclose(float(on_mesh), eager, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(grad4), np.asarray(grad1), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("section, message", [
  ({"bw_method": "scott"}, "bw_method"), ({"bw_method": -0.5}, "bw_method"),
  ({"regularization_strength": 0.0}, "regularization_strength"), ({"step": 0.0}, "step > 0"),
])
def test_bad_sections(labels, section, message):
  with pytest.raises(ValueError, match=message):
    _term(labels, 8, **section)


def test_batch_size_mismatch_and_too_few_labels(labels, case):
  preds, weights, mask = case
  term = _term(labels, 16)
  with pytest.raises(ValueError, match="batch_size 16"):
    term(_inputs(jnp.zeros((8, 1)), None, jnp.ones(8, bool)))
  with pytest.raises(ValueError, match="two distinct training labels"):
    _term(np.array([70.0, 80.0]), 8)
