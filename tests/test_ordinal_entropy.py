"""Ordinal entropy (dirjax.ordinal_entropy) against a numpy loop form of the paper / reference code."""

import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from dirjax import objective, ordinal_entropy, sharding
from tests.numerics import central_differences


def np_ordinal_entropy(features, labels, valid, sqrt_tightness=True):
  """Loop form: centres = normalised means of raw features per distinct label; diversity over label
  pairs k<l weighted by (ω − min ω)/max ω; tightness over samples with e_b > 0."""
  f, y = features[valid].astype(np.float64), labels[valid].astype(np.float64)
  unique = sorted(set(y.tolist()))
  norm = lambda v: v / max(np.linalg.norm(v), 1e-12)
  centres = [norm(f[y == u].mean(axis=0)) for u in unique]
  pairs = list(itertools.combinations(range(len(unique)), 2))
  omega = {(k, l): max(abs(unique[k] - unique[l]), 1e-6) for k, l in pairs}
  diversity = 0.0
  if pairs:
    lo, hi = min(omega.values()), max(omega.values())
    for k, l in pairs:
      diversity += (omega[k, l] - lo) / hi * max(np.linalg.norm(centres[k] - centres[l]), 1e-6)
    diversity /= len(pairs)
  spreads = [np.sum((norm(f[b]) - centres[unique.index(y[b])]) ** 2) for b in range(len(y))]
  kept = [e for e in spreads if e > 0]
  tightness = np.mean([np.sqrt(e) if sqrt_tightness else e for e in kept]) if kept else 0.0
  return tightness - diversity


def make_batch(seed, size=24, dim=6, num_labels=6):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(size, dim)).astype(np.float32), rng.integers(0, num_labels, size).astype(np.float32) * 3


@pytest.mark.parametrize("seed,sqrt_tightness", [(0, True), (1, True), (2, False)])
def test_loss_equals_loop_form(seed, sqrt_tightness):
  features, labels = make_batch(seed)
  valid = np.ones(len(labels), bool)
  valid[-4:] = False
  got = ordinal_entropy.ordinal_entropy_loss(jnp.asarray(features), jnp.asarray(labels), jnp.asarray(valid), sqrt_tightness)
  np.testing.assert_allclose(got, np_ordinal_entropy(features, labels, valid, sqrt_tightness), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("labels,which", [([2.0] * 6, "one label: tightness only"),
                                          ([0.0, 1, 2, 3, 4, 5], "all distinct: −diversity only"),
                                          ([1.0, 1, 1, 4, 4, 4], "two labels: diversity weight 0")])
def test_edge_cases_are_finite_and_match_the_loop_form(labels, which):
  features = np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)
  labels = np.asarray(labels, np.float32)
  valid = np.ones(6, bool)
  value, grad = jax.value_and_grad(ordinal_entropy.ordinal_entropy_loss)(jnp.asarray(features), jnp.asarray(labels),
                                                                          jnp.asarray(valid))
  assert np.isfinite(grad).all(), which
  np.testing.assert_allclose(value, np_ordinal_entropy(features, labels, valid), rtol=1e-5, atol=1e-6, err_msg=which)


def test_gradient_matches_finite_differences():
  features, labels = make_batch(4, size=12, dim=4, num_labels=4)
  valid = np.ones(12, bool)
  valid[-2:] = False
  with jax.enable_x64(True):
    x = jnp.asarray(features, jnp.float64)
    loss = lambda f: ordinal_entropy.ordinal_entropy_loss(f, jnp.asarray(labels, jnp.float64), jnp.asarray(valid))
    grad = np.asarray(jax.grad(loss)(x))
    numeric = central_differences(loss, x, 1e-6)
  np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)
  assert not grad[-2:].any() and np.abs(grad).max() > 1e-3  # padding rows get no gradient


def _inputs(features, targets, mask):
  return objective.TermInputs(preds=targets, features=features, calibrated=features, targets=targets, weights=None,
                              mask=mask, epoch=jnp.int32(0), rng=jax.random.key(0), noise_sigma=None, batch={}, model=None)


def _term(**section):
  return ordinal_entropy.build(ml_collections.ConfigDict({"name": "ordinal_entropy", **section}), None, None)


def test_jit_and_four_device_mesh_equal_single_device():
  features, labels = make_batch(9, size=32)
  mask = np.ones(32, bool)
  mask[-5:] = False
  term = _term(weight=0.5)
  args = (jnp.asarray(features), jnp.asarray(labels[:, None]), jnp.asarray(mask))
  value_and_grad = lambda f, *rest: jax.value_and_grad(lambda f: term(_inputs(f, *rest)))(f)
  eager_value, eager_grad = value_and_grad(*args)
  mesh = sharding.make_mesh((4,), ("data",))
  sharded = [jax.device_put(a, NamedSharding(mesh, P("data"))) for a in args]
  jit_value, jit_grad = jax.jit(value_and_grad)(*sharded)
  assert len(jit_grad.sharding.device_set) == 4
  np.testing.assert_allclose(jit_value, eager_value, rtol=1e-5)
  np.testing.assert_allclose(jit_grad, eager_grad, rtol=1e-4, atol=1e-5 * np.abs(eager_grad).max())
  np.testing.assert_allclose(eager_value, 0.5 * np_ordinal_entropy(features, labels, mask), rtol=1e-5)


def test_registered_in_objective_terms():
  assert objective.builder_of("ordinal_entropy") is ordinal_entropy.build


def test_bad_input():
  with pytest.raises(ValueError, match="weight must be >= 0"):
    _term(weight=-1.0)
  with pytest.raises(ValueError, match=r"targets \[B, 1\]"):
    _term()(_inputs(jnp.zeros((4, 3)), jnp.zeros((4, 1, 1, 1)), jnp.ones(4, bool)))
