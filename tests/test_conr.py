"""ConR (dirjax/conr.py) against a loop-form numpy re-derivation of the reference's computation."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from dirjax import conr, sharding
from tests.numerics import central_differences


def conr_oracle(f, y, p, w, valid, window, push_scale, temperature, variant):
  """Anchor by anchor, pair by pair, in float64 (ConR paper Eq. 1–3 as BorealisAI/ConR computes them)."""
  idx = [i for i in range(len(y)) if valid[i]]
  z = {i: f[i] / max(np.linalg.norm(f[i]), 1e-12) for i in idx}
  total = 0.0
  for i in idx:
    pos, neg = [], []
    for j in idx:
      d, e = abs(y[i] - y[j]), abs(p[i] - p[j])
      if d <= window and j != i:
        pos.append(j)
      if d > window and e <= window:
        neg.append(j)
    if not neg:
      continue
    s = {j: float(z[i] @ z[j]) / temperature for j in idx}
    den = sum(np.exp(s[j]) for j in pos) + (len(idx) - len(pos))
    for j in neg:
      d = abs(y[i] - y[j])
      push = w[i] * np.exp(push_scale * d) if variant == "age" else push_scale * d * w[i]
      den += push * np.exp(s[j])
    count = len(pos) if variant == "age" else len(pos) + 1
    if count == 0:
      continue
    loss = sum(np.log(den) - s[j] for j in pos) / count
    total += (w[i] if variant == "age" else 1.0) * loss
  return total / len(idx)


def _batch(seed, n=12, d=5, variant="age"):
  rng = np.random.default_rng(seed)
  f = rng.normal(size=(n, d))
  y = rng.integers(20, 26, size=n).astype(np.float64)
  if variant == "depth":
    y = rng.uniform(1.0, 2.0, size=n)
  p = y + rng.normal(scale=1.5 if variant == "age" else 0.2, size=n)
  w = rng.uniform(0.5, 2.0, size=n)
  valid = np.ones(n, bool)
  valid[-2:] = False
  return f, y, p, w, valid


HYPER = {"age": dict(window=1.0, push_scale=0.01, temperature=0.07),
         "depth": dict(window=0.2, push_scale=0.2, temperature=0.2)}


@pytest.mark.parametrize("variant", ["age", "depth"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_value_matches_loop_oracle(variant, seed):
  f, y, p, w, valid = _batch(seed, variant=variant)
  got = conr.conr_loss(*(jnp.asarray(a, jnp.float32) for a in (f, y, p, w)), jnp.asarray(valid),
                       variant=variant, **HYPER[variant])
  want = conr_oracle(f, y, p, w, valid, variant=variant, **HYPER[variant])
  assert want > 0
  np.testing.assert_allclose(float(got), want, rtol=2e-5)


def test_padding_rows_change_nothing_and_no_negatives_gives_zero():
  f, y, p, w, valid = _batch(3)
  args = dict(variant="age", **HYPER["age"])
  base = conr.conr_loss(f, y, p, w, valid, **args)
  f2, y2, p2 = f.copy(), y.copy(), p.copy()
  f2[~valid], y2[~valid], p2[~valid] = 99.0, 0.0, 0.0
  np.testing.assert_allclose(conr.conr_loss(f2, y2, p2, w, valid, **args), base, rtol=1e-6)
  spread = y * 10.0  # labels far apart and predictions spread by ≥ 10: no negatives
  assert float(conr.conr_loss(f, spread, spread, w, valid, **args)) == 0.0


@pytest.mark.parametrize("variant", ["age", "depth"])
def test_gradient_matches_finite_differences(variant):
  f, y, p, w, valid = _batch(4, n=8, d=3, variant=variant)
  hyper = dict(HYPER[variant], temperature=0.5)
  loss = lambda x: conr.conr_loss(x, jnp.asarray(y), jnp.asarray(p), jnp.asarray(w), jnp.asarray(valid),
                                  variant=variant, **hyper)
  # conr_loss computes in float32: its gradient against central differences of the float64 oracle.
  grad = np.asarray(jax.grad(loss)(jnp.asarray(f, jnp.float32)), np.float64)
  numeric = central_differences(lambda x: conr_oracle(x, y, p, w, valid, variant=variant, **hyper), f, 1e-5)
  assert np.abs(numeric).max() > 1e-3
  np.testing.assert_allclose(grad, numeric, atol=2e-4, rtol=2e-3)


def test_jit_and_four_device_mesh_equal_single_device():
  f, y, p, w, valid = (jnp.asarray(a) for a in _batch(5, n=16, d=6))
  fn = lambda *a: conr.conr_loss(*a, variant="age", **HYPER["age"])
  eager = fn(f, y, p, w, valid)
  mesh = sharding.make_mesh()
  rows = NamedSharding(mesh, P("data"))
  sharded = [jax.device_put(a, rows) for a in (f, y, p, w, valid)]
  assert len(sharded[0].sharding.device_set) == 4
  np.testing.assert_allclose(jax.jit(fn)(f, y, p, w, valid), eager, rtol=1e-6)
  np.testing.assert_allclose(jax.jit(fn)(*sharded), eager, rtol=1e-6)


def test_bad_inputs():
  f, y, p, w, valid = _batch(0)
  with pytest.raises(ValueError, match="variant"):
    conr.conr_loss(f, y, p, w, valid, variant="imdb", **HYPER["age"])
  config = ml_collections.ConfigDict({"data": {"name": "x", "two_views": False}})
  section = {"name": "conr", "weight": 4.0, "window": 1.0, "push_scale": 0.01, "temperature": 0.07}
  with pytest.raises(ValueError, match="two_views=True"):
    conr.build(section, config, None)
  with pytest.raises(ValueError, match="temperature"):
    conr.build({**section, "temperature": 0.0, "variant": "depth"}, config, None)
  with pytest.raises(ValueError, match="'window'"):
    conr.build({"name": "conr", "weight": 1.0, "push_scale": 0.1, "temperature": 0.2, "variant": "depth"}, config, None)
