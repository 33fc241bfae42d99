"""Rank-N-Contrast (dirjax/rank_n_contrast.py) against the loop form of the paper's Eq. 2."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from dirjax import rank_n_contrast, sharding
from tests.numerics import central_differences


def rnc_oracle(v, y, valid, temperature):
  """Pair by pair, in float64: −s_ij + log Σ_{k≠i, D_ik ≥ D_ij} exp(s_ik), averaged over ordered pairs."""
  idx = [i for i in range(len(v)) if valid[i]]
  s = lambda i, j: -np.linalg.norm(v[i] - v[j]) / temperature
  dist = lambda i, j: np.abs(y[i] - y[j]).sum()
  total, pairs = 0.0, 0
  for i in idx:
    for j in idx:
      if j == i:
        continue
      den = sum(np.exp(s(i, k)) for k in idx if k != i and dist(i, k) >= dist(i, j))
      total += -s(i, j) + np.log(den)
      pairs += 1
  return total / pairs


def rnc_dense(v, y, valid, temperature):
  """The unsorted vectorised form, an [n, n, n] contrast-set mask (the reference's cost), in jax."""
  n = v.shape[0]
  d2 = jnp.sum(jnp.square(v[:, None] - v[None]), -1)
  s = -jnp.where(d2 > 0, jnp.sqrt(jnp.where(d2 > 0, d2, 1.0)), 0.0) / temperature
  dist = jnp.sum(jnp.abs(y[:, None] - y[None]), -1)
  member = valid[:, None] & valid[None] & ~jnp.eye(n, dtype=bool)
  in_set = member[:, None, :] & (dist[:, None, :] >= dist[:, :, None])  # [i, j, k]
  log_den = jnp.log(jnp.sum(jnp.where(in_set, jnp.exp(s)[:, None, :], 0.0), -1))
  return jnp.sum(jnp.where(member, log_den - s, 0.0)) / jnp.sum(member)


def _batch(seed, n=10, d=4, integer=True):
  rng = np.random.default_rng(seed)
  v = rng.normal(size=(n, d))
  v[n // 2] = v[0]  # a zero distance off the diagonal (the other view of an unaugmented image)
  y = rng.integers(0, 4, size=(n, 1)).astype(float) if integer else rng.uniform(0, 3, size=(n, 1))
  valid = np.ones(n, bool)
  valid[-1] = False
  return v, y, valid


@pytest.mark.parametrize("integer", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_value_matches_loop_oracle_and_dense_form(integer, seed):
  v, y, valid = _batch(seed, integer=integer)
  got = rank_n_contrast.rnc_loss(jnp.asarray(v, jnp.float32), jnp.asarray(y, jnp.float32), jnp.asarray(valid),
                                 temperature=2.0)
  np.testing.assert_allclose(float(got), rnc_oracle(v, y, valid, 2.0), rtol=1e-5)
  dense = rnc_dense(jnp.asarray(v, jnp.float32), jnp.asarray(y, jnp.float32), jnp.asarray(valid), 2.0)
  np.testing.assert_allclose(float(got), float(dense), rtol=1e-5)


def test_gradient_matches_finite_differences_and_is_finite_at_zero_distance():
  v, y, valid = _batch(2, n=8, d=3)
  loss = lambda x: rank_n_contrast.rnc_loss(x, jnp.asarray(y, jnp.float32), jnp.asarray(valid), temperature=0.5)
  grad = np.asarray(jax.grad(loss)(jnp.asarray(v, jnp.float32)), np.float64)
  assert np.all(np.isfinite(grad))
  w = v.copy()
  w[4] = w[0] + 0.3  # finite differences away from the kink at distance 0
  grad = np.asarray(jax.grad(loss)(jnp.asarray(w, jnp.float32)), np.float64)
  numeric = central_differences(lambda x: rnc_oracle(x, y, valid, 0.5), w, 1e-5)
  assert np.abs(numeric).max() > 1e-2
  np.testing.assert_allclose(grad, numeric, atol=2e-4, rtol=2e-3)


def test_jit_and_four_device_mesh_equal_single_device():
  v, y, valid = (jnp.asarray(a) for a in _batch(3, n=16, d=6))
  v, y = v.astype(jnp.float32), y.astype(jnp.float32)
  fn = lambda *a: rank_n_contrast.rnc_loss(*a, temperature=2.0)
  eager = fn(v, y, valid)
  rows = NamedSharding(sharding.make_mesh(), P("data"))
  sharded = [jax.device_put(a, rows) for a in (v, y, valid)]
  assert len(sharded[0].sharding.device_set) == 4
  np.testing.assert_allclose(jax.jit(fn)(v, y, valid), eager, rtol=1e-6)
  np.testing.assert_allclose(jax.jit(fn)(*sharded), eager, rtol=1e-6)
  grad = jax.jit(jax.grad(fn))
  np.testing.assert_allclose(grad(*sharded), grad(v, y, valid), rtol=1e-5, atol=1e-7)


def test_memory_at_reference_batch_has_no_cubic_buffer():
  """B = 256: n = 512 anchors. The loss and its gradient compile without an n³ buffer (512 MiB in float32)."""
  n, d = 512, 512
  v = jax.ShapeDtypeStruct((n, d), jnp.float32)
  y = jax.ShapeDtypeStruct((n, 1), jnp.float32)
  valid = jax.ShapeDtypeStruct((n,), jnp.bool_)
  fn = jax.grad(lambda a, b, c: rank_n_contrast.rnc_loss(a, b, c, temperature=2.0))
  lowered = jax.jit(fn).lower(v, y, valid)
  cubic = n * n * n * 4
  assert f"{n},{n},{n}" not in lowered.as_text().replace(" ", "") and f"{n}x{n}x{n}" not in lowered.as_text()
  stats = lowered.compile().memory_analysis()
  assert stats.temp_size_in_bytes < cubic / 8, stats.temp_size_in_bytes
  # the dense form is the cubic one: the check above can fail
  dense = jax.jit(jax.grad(lambda a, b, c: rnc_dense(a, b, c, 2.0))).lower(v, y, valid)
  assert f"{n}x{n}x{n}" in dense.as_text()


def test_bad_inputs():
  config = ml_collections.ConfigDict({"data": {"name": "x", "two_views": False}})
  with pytest.raises(ValueError, match="two_views=True"):
    rank_n_contrast.build({"name": "rank_n_contrast", "temperature": 2.0}, config, None)
  with pytest.raises(ValueError, match="temperature > 0"):
    rank_n_contrast.build({"name": "rank_n_contrast", "temperature": -1.0}, config, None)
