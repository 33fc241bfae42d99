"""RankSim (dirjax.ranksim) against numpy loop-form re-derivations of the paper / reference code."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from dirjax import objective, ranksim, sharding


def np_rank01(v: np.ndarray) -> np.ndarray:
  """(descending rank + 1)/m with ties to the later index: stable ascending argsort, reversed, inverted
  (the STS-B copy of the reference's ranking)."""
  order = np.argsort(v, kind="stable")[::-1]
  rank = np.empty(len(v), int)
  rank[order] = np.arange(len(v))
  return (rank + 1.0) / len(v)


def np_ranksim(features, labels, keep, lam=None, gamma=1.0):
  """Loop form of L_RS over the kept rows sorted by label (as the reference's subset), and, when `lam` is
  given, dL/dS by the blackbox formula with the cotangent γ·2(Q − T)/m. Returns (γ·loss, kept order, dS)."""
  idx = np.flatnonzero(keep)
  idx = idx[np.argsort(labels[idx], kind="stable")]
  x, y = features[idx].astype(np.float64), labels[idx].astype(np.float64)
  m = len(idx)
  z = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  s = z @ z.T
  loss, grad = 0.0, np.zeros((m, m))
  for i in range(m):
    q = np_rank01(s[i])
    t = np_rank01(-np.abs(y[i] - y))
    loss += np.mean((q - t) ** 2)
    if lam is not None:
      g = gamma * 2.0 * (q - t) / m
      grad[i] = (np_rank01(s[i] + lam * g) - q) / (lam + 1e-8)
  return gamma * loss, idx, grad


def make_batch(seed, size=24, dim=6, num_labels=7):
  rng = np.random.default_rng(seed)
  features = rng.normal(size=(size, dim)).astype(np.float32)
  labels = rng.integers(0, num_labels, size).astype(np.float32)
  return features, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_equals_loop_form(seed):
  features, labels = make_batch(seed)
  valid = np.ones(len(labels), bool)
  valid[-3:] = False  # padding rows
  keep = np.asarray(ranksim.one_per_label(jnp.asarray(labels), jnp.asarray(valid), jax.random.key(seed)))
  expected, _, _ = np_ranksim(features, labels, keep)
  got = ranksim.ranksim_loss(jnp.asarray(features), jnp.asarray(labels), jnp.asarray(keep), 2.0)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  assert expected > 0


def test_ranks_order_ties_to_the_larger_label():
  scores = jnp.array([[0.0, 1.0, 0.0, 5.0, 1.0]])
  tiebreak = jnp.arange(5.0)
  valid = jnp.array([True, True, True, False, True])
  got = np.asarray(ranksim.descending_ranks(scores, tiebreak, valid))[0]
  # valid scores 0, 1, 0, 1 at labels 0, 1, 2, 4: 1@4 first, 1@1, 0@2, 0@0; the invalid 5 ranks last.
  np.testing.assert_allclose(got[[4, 1, 2, 0]], np.array([1, 2, 3, 4]) / 4.0)
  assert got[3] > 1.0


def test_one_sample_per_label_uniform_within_label_and_never_padding():
  labels = jnp.array([3.0, 1.0, 3.0, 3.0, 2.0, 1.0, 3.0, 5.0])
  valid = jnp.array([True, True, True, True, True, True, True, False])
  keeps = np.asarray(jax.vmap(lambda k: ranksim.one_per_label(labels, valid, k))(jax.random.split(jax.random.key(0), 4000)))
  labels = np.asarray(labels)
  for u in (1.0, 2.0, 3.0):
    assert (keeps[:, labels == u].sum(axis=1) == 1).all()
  assert not keeps[:, 7].any()
  frequency = keeps[:, labels == 3.0].mean(axis=0)  # 4 rows of label 3: each 1/4 (binomial sd 0.007)
  np.testing.assert_allclose(frequency, 0.25, atol=0.03)


def test_all_distinct_labels_keep_the_whole_batch():
  keep = ranksim.one_per_label(jnp.arange(10.0), jnp.ones(10, bool), jax.random.key(3))
  assert np.asarray(keep).all()


@pytest.mark.parametrize("gamma,lam", [(1.0, 2.0), (100.0, 2.0), (100.0, 0.5)])
def test_blackbox_gradient_is_its_defining_formula(gamma, lam):
  """dL/dS = (rk(S + λg) − rk(S))/(λ + 1e-8) with g = γ·2(Q − T)/m, and the chain rule to the features."""
  features, labels = make_batch(5, size=20)
  keep = np.asarray(ranksim.one_per_label(jnp.asarray(labels), jnp.ones(20, bool), jax.random.key(1)))
  _, idx, ds = np_ranksim(features, labels, keep, lam=lam, gamma=gamma)
  x = jnp.asarray(features)
  got = jax.grad(lambda f: gamma * ranksim.ranksim_loss(f, jnp.asarray(labels), jnp.asarray(keep), lam))(x)
  assert np.abs(ds).max() > 0
  dense = np.zeros((20, 20), np.float32)
  dense[np.ix_(idx, idx)] = ds

  def similarity(f):
    z = ranksim.l2_normalize(f)
    return z @ z.T

  _, pullback = jax.vjp(similarity, x)
  np.testing.assert_allclose(got, pullback(jnp.asarray(dense))[0], rtol=1e-4, atol=1e-6)


def test_gamma_sits_inside_the_perturbation():
  """The reference feeds γ·∂L/∂Q into the blackbox: the gradient is not γ times the γ=1 gradient."""
  features, labels = make_batch(7, size=32)
  keep = ranksim.one_per_label(jnp.asarray(labels), jnp.ones(32, bool), jax.random.key(0))
  grad = lambda g: jax.grad(lambda f: g * ranksim.ranksim_loss(f, jnp.asarray(labels), keep, 2.0))(jnp.asarray(features))
  ratio = np.linalg.norm(grad(100.0)) / np.linalg.norm(grad(1.0))
  assert 1.0 < ratio < 50.0  # the reference's own check: ×4.1 at B=16, d=8


def test_single_label_and_zero_features_are_finite_zero():
  zero = jnp.zeros((6, 4))
  labels = jnp.full((6,), 2.0)
  keep = ranksim.one_per_label(labels, jnp.ones(6, bool), jax.random.key(0))
  assert int(keep.sum()) == 1
  value, grad = jax.value_and_grad(lambda f: ranksim.ranksim_loss(f, labels, keep, 2.0))(zero)
  assert float(value) == 0.0 and np.isfinite(grad).all() and not np.asarray(grad).any()


def _inputs(features, targets, mask, rng):
  return objective.TermInputs(preds=targets, features=features, calibrated=features, targets=targets, weights=None,
                              mask=mask, epoch=jnp.int32(0), rng=rng, noise_sigma=None, batch={}, model=None)


def _term(**section):
  return ranksim.build(ml_collections.ConfigDict({"name": "ranksim", **section}), None, None)


def test_jit_and_four_device_mesh_equal_single_device():
  features, labels = make_batch(11, size=32)
  mask = np.ones(32, bool)
  mask[-4:] = False
  term = _term(weight=100.0, interpolation=2.0)
  args = (jnp.asarray(features), jnp.asarray(labels[:, None]), jnp.asarray(mask), jax.random.key(4))
  value_and_grad = lambda f, *rest: jax.value_and_grad(lambda f: term(_inputs(f, *rest)))(f)
  eager_value, eager_grad = value_and_grad(*args)
  mesh = sharding.make_mesh((4,), ("data",))  # the trainer's mesh (Auto axes)
  sharded = [jax.device_put(a, NamedSharding(mesh, P("data"))) for a in args[:3]] + [args[3]]
  jit_value, jit_grad = jax.jit(value_and_grad)(*sharded)
  assert len(jit_grad.sharding.device_set) == 4
  np.testing.assert_allclose(jit_value, eager_value, rtol=1e-6)
  np.testing.assert_allclose(jit_grad, eager_grad, rtol=1e-5, atol=1e-5 * np.abs(eager_grad).max())  # sum order
  # the value is the loop form over the global batch
  keep = np.asarray(ranksim.one_per_label(jnp.asarray(labels), jnp.asarray(mask), args[3]))
  np.testing.assert_allclose(eager_value, np_ranksim(features, labels, keep, gamma=100.0)[0], rtol=1e-5)


def test_registered_in_objective_terms():
  assert objective.builder_of("ranksim") is ranksim.build


@pytest.mark.parametrize("section,match", [({"interpolation": 0.0}, "interpolation"),
                                           ({"interpolation": -1.0}, "interpolation"),
                                           ({"weight": -1.0}, "weight")])
def test_bad_hyper_parameters(section, match):
  with pytest.raises(ValueError, match=match):
    _term(**section)


def test_bad_shapes():
  term = _term()
  with pytest.raises(ValueError, match=r"targets \[B, 1\]"):
    term(_inputs(jnp.zeros((4, 3)), jnp.zeros((4, 2)), jnp.ones(4, bool), jax.random.key(0)))
  with pytest.raises(ValueError, match="features"):
    term(_inputs(jnp.zeros((4, 2, 2, 3)), jnp.zeros((4, 1)), jnp.ones(4, bool), jax.random.key(0)))
