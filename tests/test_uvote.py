"""UVOTE against numpy loop-form oracles of the paper / reference equations (SherryJYC/UVOTE `agedb-dir/`):
per-head weights n^(−r_m) (`datasets_gradual.py`), the Laplace NLL (`loss.py`), the dynamic head factors
(`train_gradual.py` L353–370) and the "minvar" selection (`validate_mul`); finite-difference gradients;
jit and a 4-device batch sharding equal to the eager single-device value; bad inputs."""

import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from dirjax import sharding, uvote, weighting

BINNING = weighting.Binning(10)


def np_head_weights(labels, exponents, num_bins=10):
  """Per-sample weights of each head, sample by sample as `datasets_gradual.py`: c = n^r (clip [5, 1000] when
  r >= 1), w = 1/c, then scaled to mean 1 over the training samples."""
  labels = np.asarray(labels)
  counts = [0] * num_bins
  for y in labels:
    counts[min(max(int(np.floor(y)), 0), num_bins - 1)] += 1
  out = []
  for r in exponents:
    w = []
    for y in labels:
      c = counts[min(max(int(np.floor(y)), 0), num_bins - 1)] ** r
      if r >= 1:
        c = min(max(c, 5.0), 1000.0)
      w.append(1.0 / c)
    w = np.array(w)
    out.append(w / w.mean())
  return np.stack(out)  # [M, N]


def np_laplace_nll(mu, s, y, w, valid, lo, hi):
  """Per-head L_m = Σ_valid w·(log 2b + |y − μ|/b) / #valid, b = exp(clip(s)) + 1e-10, one row at a time."""
  num_rows, num_heads = mu.shape
  out = []
  for m in range(num_heads):
    total = 0.0
    for i in range(num_rows):
      if valid[i]:
        b = np.exp(min(max(s[i, m], lo), hi)) + 1e-10
        total += w[i, m] * (np.log(2 * b) + abs(y[i, 0] - mu[i, m]) / b)
    out.append(total / max(sum(valid), 1))
  return np.array(out)


def np_factors(epoch, num_epochs, num_heads, dynamic, head0_dynamic):
  alpha = 1 - (epoch / num_epochs) ** 2
  return np.array([alpha if head0_dynamic else 1.0] + [(1 - alpha) if dynamic else 1.0] * (num_heads - 1))


def labels_and_batch(num_heads=3, rows=8, seed=0):
  rng = np.random.default_rng(seed)
  labels = np.concatenate([np.full(40, 0.5), np.full(12, 3.2), np.full(2, 7.7), [9.1, 5.5, 5.4]])
  y = rng.choice(labels, rows)[:, None].astype(np.float32)
  mu = (y + rng.normal(0, 2, (rows, num_heads))).astype(np.float32)
  s = rng.uniform(-6, 6, (rows, num_heads)).astype(np.float32)
  return labels, y, mu, s


def test_head_weight_tables_match_the_per_sample_loop():
  labels, *_ = labels_and_batch()
  exponents = uvote.head_exponents(3)
  np.testing.assert_allclose(exponents, [0, 0.5, 1])
  tables = uvote.head_weight_tables(labels, BINNING, exponents)
  per_sample = tables[:, BINNING.index(labels)]
  np.testing.assert_allclose(per_sample, np_head_weights(labels, exponents), rtol=1e-6)
  assert tables[2, 1] == 0  # an empty bin


def test_laplace_nll_matches_the_loop_and_clips_hard():
  labels, y, mu, s = labels_and_batch()
  w = np.random.default_rng(1).uniform(0.2, 3, mu.shape).astype(np.float32)
  valid = np.array([1, 1, 1, 1, 1, 1, 0, 0], bool)
  got = uvote.laplace_nll(jnp.asarray(mu), jnp.asarray(s), jnp.asarray(y), jnp.asarray(w), jnp.asarray(valid), (-5, 5))
  np.testing.assert_allclose(got, np_laplace_nll(mu, s, y, w, valid, -5, 5), rtol=1e-5)
  # Hard clip: no gradient to a log-scale outside [-5, 5], a non-zero one inside.
  grad = jax.grad(lambda t: uvote.laplace_nll(jnp.asarray(mu), t, jnp.asarray(y), jnp.asarray(w),
                                              jnp.asarray(valid), (-5, 5)).sum())(jnp.asarray(s))
  outside = (np.abs(s) > 5) | ~valid[:, None]
  assert np.all(np.asarray(grad)[outside] == 0) and np.all(np.asarray(grad)[~outside] != 0)


def test_laplace_nll_finite_difference_gradients():
  _, y, mu, s = labels_and_batch()
  s = np.clip(s, -2, 2)  # inside the clip; |y − μ| > 0 almost surely
  w = np.ones_like(mu)
  valid = np.ones(len(y), bool)
  f = lambda a, b: float(np_laplace_nll(a.astype(np.float64), b.astype(np.float64), y, w, valid, -5, 5).sum())
  gm, gs = jax.grad(lambda a, b: uvote.laplace_nll(a, b, jnp.asarray(y), jnp.asarray(w), jnp.asarray(valid),
                                                   (-5, 5)).sum(), argnums=(0, 1))(jnp.asarray(mu), jnp.asarray(s))
  eps = 1e-3
  for (i, m) in [(0, 0), (3, 1), (5, 2)]:
    for arr, g in ((mu, gm), (s, gs)):
      plus, minus = arr.copy(), arr.copy()
      plus[i, m] += eps
      minus[i, m] -= eps
      fd = (f(plus, s) - f(minus, s)) if arr is mu else (f(mu, plus) - f(mu, minus))
      np.testing.assert_allclose(np.asarray(g)[i, m], fd / (2 * eps), rtol=2e-3, atol=1e-4)


def test_min_uncertainty_selection_matches_numpy():
  _, _, mu, s = labels_and_batch(num_heads=4, rows=16)
  s[0, :] = 1.0  # a tie: the first head wins, like argmin
  pred, std = uvote.select_min_uncertainty(jnp.asarray(mu), jnp.asarray(s))
  for i in range(len(mu)):
    m = min(range(4), key=lambda k: (s[i, k], k))
    np.testing.assert_allclose(pred[i, 0], mu[i, m], rtol=1e-6)
    np.testing.assert_allclose(std[i, 0], np.sqrt(2) * np.exp(s[i, m]), rtol=1e-5)


class FakeModel(nnx.Module):
  def __init__(self, head):
    self.head = head


def uvote_term(num_heads, labels, **loss):
  config = ml_collections.ConfigDict({
    "head": {"name": "uvote", "num_heads": num_heads}, "num_epochs": 10, "reweight": {"method": "none"}})
  bundle = types.SimpleNamespace(train_labels=labels, binning=BINNING)
  return uvote.build(ml_collections.ConfigDict(loss), config, bundle)


def term_inputs(head, features, y, valid, epoch):
  return types.SimpleNamespace(model=FakeModel(head), calibrated=features, targets=y, mask=valid,
                               epoch=jnp.asarray(epoch, jnp.int32))


@pytest.mark.parametrize("head0_dynamic,clip", [(False, (-5.0, 5.0)), (True, (-5.0, 10.0))])
def test_term_matches_the_oracle_on_jit_and_a_4_device_mesh(head0_dynamic, clip):
  labels, y, _, _ = labels_and_batch(rows=8)
  head = uvote.UvoteHead(5, 3, rngs=nnx.Rngs(0))
  head.log_scale.kernel[...] = head.log_scale.kernel[...] * 300  # spread the log-scales over the clip
  features = np.random.default_rng(2).normal(size=(8, 5)).astype(np.float32)
  valid = np.array([1] * 7 + [0], bool)
  term = uvote_term(3, labels, dynamic=True, head0_dynamic=head0_dynamic, log_scale_clip=clip)
  epoch = 4
  value = term(term_inputs(head, jnp.asarray(features), jnp.asarray(y), jnp.asarray(valid), epoch))

  mu = features @ np.asarray(head.mean.kernel[...]) + np.asarray(head.mean.bias[...])
  s = features @ np.asarray(head.log_scale.kernel[...]) + np.asarray(head.log_scale.bias[...])
  w = np_head_weights(labels, uvote.head_exponents(3))
  table = {float(np.float32(lab)): w[:, j] for j, lab in enumerate(labels)}
  w_batch = np.stack([table[float(v)] for v in y[:, 0]])
  expected = np.sum(np_factors(epoch, 10, 3, True, head0_dynamic) * np_laplace_nll(mu, s, y, w_batch, valid, *clip))
  np.testing.assert_allclose(value, expected, rtol=1e-5)

  jitted = nnx.jit(lambda h, f, t, v: term(term_inputs(h, f, t, v, epoch)))
  np.testing.assert_allclose(jitted(head, jnp.asarray(features), jnp.asarray(y), jnp.asarray(valid)), value, rtol=1e-6)
  mesh = sharding.make_mesh()
  rows = NamedSharding(mesh, PartitionSpec("data"))
  sharded = [jax.device_put(a, rows) for a in (features, y, valid)]
  np.testing.assert_allclose(jitted(head, *sharded), value, rtol=1e-6)


def test_dynamic_off_weights_every_head_one():
  np.testing.assert_allclose(uvote.head_factors(jnp.asarray(3), 10, 2, False, False), [1, 1])
  np.testing.assert_allclose(uvote.head_factors(jnp.asarray(3), 10, 2, True, False), [1, 0.09], rtol=1e-6)


def test_bad_inputs():
  labels, *_ = labels_and_batch()
  with pytest.raises(ValueError, match="num_heads must be an integer >= 1"):
    uvote.UvoteHead(4, 0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="one r per head"):
    uvote_term(2, labels, exponents=[0.0, 0.5, 1.0])
  with pytest.raises(ValueError, match="finite values >= 0"):
    uvote.head_weight_tables(labels, BINNING, [0.0, -1.0])
  with pytest.raises(ValueError, match="low < high"):
    uvote_term(2, labels, log_scale_clip=(5.0, -5.0))
  config = ml_collections.ConfigDict({"num_epochs": 1, "reweight": {"method": "none"}})
  with pytest.raises(ValueError, match="needs config.head"):
    uvote.build(ml_collections.ConfigDict({}), config, None)
  config = ml_collections.ConfigDict({"head": {"name": "uvote", "num_heads": 2}, "num_epochs": 1,
                                      "reweight": {"method": "sqrt_inv"}})
  with pytest.raises(ValueError, match="reweight.method='none'"):
    uvote.build(ml_collections.ConfigDict({}), config, types.SimpleNamespace(train_labels=labels, binning=BINNING))


@pytest.mark.parametrize("name", ["agedb_uvote", "imdb_uvote"])
def test_configs_train_the_log_scale_layers_at_a_tenth_of_the_lr(name):
  # train_gradual.py L207–215: the `logvar_linears` group at 0.1·lr. Adam's first step is lr·g/(|g| + eps).
  import importlib
  from dirjax import optim
  config = importlib.import_module(f"configs.{name}").get_config()
  model = FakeModel(uvote.UvoteHead(4, 2, rngs=nnx.Rngs(0)))
  before = jax.tree.map(np.array, nnx.state(model, nnx.Param))
  opt = nnx.Optimizer(model, optim.build_optimizer(config, steps_per_epoch=10), wrt=nnx.Param)
  opt.update(model, jax.tree.map(lambda p: jnp.full_like(p, 0.5), nnx.state(model, nnx.Param)))
  after = jax.tree.map(np.array, nnx.state(model, nnx.Param))
  lr = config.optimizer.lr
  for layer, factor in (("mean", 1.0), ("log_scale", 0.1)):
    for leaf in ("kernel", "bias"):
      moved = before["head"][layer][leaf] - after["head"][layer][leaf]
      np.testing.assert_allclose(moved, factor * lr, rtol=1e-4, err_msg=f"{layer}/{leaf}")
