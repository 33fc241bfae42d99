"""dirjax.losses against numpy/scipy re-derivations, closed forms and finite differences."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit, logsumexp
from scipy.stats import multivariate_normal

from dirjax import losses

# Jitted entry points: one compile per shape is far cheaper than eager op-by-op dispatch on CPU.
# Input-validation tests call the plain functions (concrete values are checked eagerly).
REG = {name: jax.jit(getattr(losses, name),
                     static_argnames=("activate",) if "focal" in name else ())
       for name in losses.REGRESSION_LOSSES}
bmc = jax.jit(losses.bmc_loss, static_argnames="num_negatives")
gai = jax.jit(losses.gai_loss)
bni = jax.jit(losses.bni_loss)


# ----------------------------------------------------------------------------------------------
# numpy oracles, from the formulas of DIR `imdb-wiki-dir/loss.py` and BalancedMSE `balanaced_mse.py`.

def np_elementwise(name, p, y, **hyper):
  e = p - y
  a = np.abs(e)
  if name == "mse":
    return e**2
  if name == "l1":
    return a
  if name in ("focal_l1", "focal_mse"):
    beta, gamma = hyper.get("beta", 0.2), hyper.get("gamma", 1.0)
    act = np.tanh(beta * a) if hyper.get("activate") == "tanh" else 2 * expit(beta * a) - 1
    return (a if name == "focal_l1" else e**2) * act**gamma
  if name == "huber":
    beta = hyper.get("beta", 1.0)
    return np.where(a < beta, 0.5 * e**2 / beta, a - 0.5 * beta)
  if name == "logcosh":
    return np.log(np.cosh(e))
  if name == "smape":
    return a / ((np.abs(p) + np.abs(y)) / 2 + hyper.get("eps", 1e-8))
  raise KeyError(name)


def np_regression(name, p, y, w=None, valid=None, **hyper):
  """Plain mean of w·ℓ over valid elements (valid: bool array broadcastable to y)."""
  ell = np_elementwise(name, p.astype(np.float64), y.astype(np.float64), **hyper)
  if w is not None:
    ell = ell * np.broadcast_to(w, ell.shape)
  if valid is None:
    return ell.mean()
  valid = np.broadcast_to(valid, ell.shape)
  return ell[valid].sum() / valid.sum()


def np_bmc(p, y, v, scale=None):
  p, y = p.astype(np.float64), y.astype(np.float64)
  scale = 2 * v if scale is None else scale
  logits = -((p[:, None, :] - y[None, :, :]) ** 2).sum(-1) / (2 * v)
  return scale * np.mean(logsumexp(logits, axis=1) - np.diag(logits))


def np_gai_1d(p, y, v, mu, tau2, pi, scale=None):
  """1-D GAI exactly as `gai_loss` in BalancedMSE `imdb-wiki-dir/balanaced_mse.py` writes it."""
  p, y = p[:, 0].astype(np.float64), y[:, 0].astype(np.float64)
  scale = 2 * v if scale is None else scale
  mse = (p - y) ** 2 / (2 * v) + 0.5 * np.log(v)
  terms = (-0.5 * np.log(tau2 + v)[None] - 0.5 * (p[:, None] - mu[None]) ** 2 / (tau2 + v)[None]
           + np.log(pi)[None])
  return scale * np.mean(mse + logsumexp(terms, axis=1))


def np_gai_scipy(p, y, v, means, covs, pi):
  """Multi-dim GAI from scipy densities: −log N(y; p, vI) + log Σ π_k N(p; μ_k, Σ_k + vI)."""
  d = p.shape[1]
  rows = []
  for pi_row, yi in zip(p, y):
    nll = -multivariate_normal(pi_row, v * np.eye(d)).logpdf(yi)
    mix = logsumexp([multivariate_normal(m, c + v * np.eye(d)).logpdf(pi_row) + np.log(w)
                     for m, c, w in zip(means, covs, pi)])
    rows.append(nll + mix)
  return 2 * v * np.mean(rows)


def np_bni(p, y, v, centers, weights, scale=None):
  p, y = p.astype(np.float64), y.astype(np.float64)
  centers = centers.reshape(len(weights), -1)
  scale = 2 * v if scale is None else scale
  w = weights / weights.sum()
  mse = ((p - y) ** 2).sum(-1) / (2 * v)
  terms = -((p[:, None, :] - centers[None]) ** 2).sum(-1) / (2 * v) + np.log(w)[None]
  return scale * np.mean(mse + logsumexp(terms, axis=1))


def close(actual, expected, rtol=2e-5, atol=1e-6):
  np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol)


def data(b=16, d=1, scale=3.0, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.normal(size=(b, d)).astype(np.float32) * scale
  p = (y + rng.normal(size=(b, d)) * 1.5).astype(np.float32)
  return p, y


GMM_1D = dict(gmm_means=np.array([-2.0, 0.5, 3.0], np.float32),
              gmm_covs=np.array([0.7, 2.0, 0.3], np.float32),
              gmm_weights=np.array([0.2, 0.5, 0.3], np.float32))
BUCKETS_1D = dict(bucket_centers=np.linspace(-6, 6, 25).astype(np.float32),
                  bucket_weights=np.exp(-np.linspace(-6, 6, 25) ** 2 / 8).astype(np.float32))


def spd(k, d, seed=1):
  a = np.random.default_rng(seed).normal(size=(k, d, d))
  return (a @ np.swapaxes(a, 1, 2) / d + 0.3 * np.eye(d)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Regression losses.

HYPERS = {"mse": {}, "l1": {}, "focal_l1": {}, "focal_mse": {"activate": "tanh", "beta": 0.5,
          "gamma": 2.0}, "huber": {"beta": 0.7}, "logcosh": {}, "smape": {}}


@pytest.mark.parametrize("name", list(HYPERS))
def test_regression_matches_numpy_with_weights_and_mask(name):
  rng = np.random.default_rng(10)
  fn, hyper = REG[name], HYPERS[name]
  p, y = data(b=12, d=2)
  w = rng.uniform(0.1, 3, size=12).astype(np.float32)
  w_el = rng.uniform(0.1, 3, size=(12, 2)).astype(np.float32)
  row_mask = np.arange(12) < 9
  el_mask = rng.uniform(size=(12, 2)) < 0.6
  close(fn(p, y, **hyper), np_regression(name, p, y, **hyper))
  close(fn(p, y, weights=w, **hyper), np_regression(name, p, y, w[:, None], **hyper))
  close(fn(p, y, weights=w[:, None], **hyper), np_regression(name, p, y, w[:, None], **hyper))
  close(fn(p, y, weights=w_el, **hyper), np_regression(name, p, y, w_el, **hyper))
  close(fn(p, y, weights=w, mask=row_mask, **hyper),
        np_regression(name, p, y, w[:, None], row_mask[:, None], **hyper))
  close(fn(p, y, weights=w_el, mask=el_mask.astype(np.float32), **hyper),
        np_regression(name, p, y, w_el, el_mask, **hyper))


def test_focal_sigmoid_default_and_dense_maps():
  rng = np.random.default_rng(11)
  p, y = data(b=2 * 3 * 4, d=1)
  p, y = p.reshape(2, 3, 4, 1), y.reshape(2, 3, 4, 1)
  mask = rng.uniform(size=y.shape) < 0.5
  w = rng.uniform(size=2).astype(np.float32)
  close(REG["focal_l1"](p, y, weights=w, mask=mask),
        np_regression("focal_l1", p, y, w[:, None, None, None], mask))
  rows = np.array([True, False])
  close(REG["mse"](p, y, mask=rows), np_regression("mse", p, y, None, rows[:, None, None, None]))


def test_logcosh_is_stable_for_large_errors():
  p = np.array([[200.0], [-300.0], [0.0]], np.float32)
  y = np.zeros_like(p)
  # log cosh(e) = |e| − log 2 + log1p(exp(−2|e|)); the last term is exactly 0 in float here.
  close(REG["logcosh"](p, y), np.mean([200 - math.log(2), 300 - math.log(2), 0.0]))
  grad = jax.jit(jax.grad(lambda q: losses.logcosh(q, y)))(p)
  close(grad, np.tanh(p.astype(np.float64)) / 3)


def test_smape_zero_pair_is_zero():
  p = np.array([[0.0], [1.0]], np.float32)
  y = np.array([[0.0], [3.0]], np.float32)
  close(REG["smape"](p, y), np.mean([0.0, 2 / ((1 + 3) / 2)]))


def test_bfloat16_inputs_are_computed_in_float32():
  p, y = data(b=8)
  p16, y16 = jnp.asarray(p, jnp.bfloat16), jnp.asarray(y, jnp.bfloat16)
  value = REG["mse"](p16, y16)
  assert value.dtype == jnp.float32
  close(value, np_regression("mse", np.asarray(p16, np.float64), np.asarray(y16, np.float64)))
  assert bmc(p16, y16, 1.0).dtype == jnp.float32


def test_masked_regression_ignores_nan_padding_in_value_and_gradient():
  p, y = data(b=8, d=1)
  p_pad = np.concatenate([p, np.full((3, 1), np.nan, np.float32)])
  y_pad = np.concatenate([y, np.full((3, 1), np.inf, np.float32)])
  w_pad = np.concatenate([np.ones(8, np.float32), np.full(3, np.nan, np.float32)])
  mask = np.arange(11) < 8
  for name in HYPERS:
    fn = getattr(losses, name)
    value, grad = jax.jit(jax.value_and_grad(lambda q: fn(q, y_pad, weights=w_pad, mask=mask)))(
        p_pad)
    close(value, np_regression(name, p, y))
    assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad)[8:] == 0)


def test_all_masked_gives_zero():
  p, y = data(b=4)
  assert float(REG["mse"](p, y, mask=np.zeros(4, bool))) == 0.0


# ----------------------------------------------------------------------------------------------
# BMC.

@pytest.mark.parametrize("d", [1, 3])
def test_bmc_matches_numpy(d):
  p, y = data(b=16, d=d)
  for sigma in (0.5, 1.0, 4.0):
    close(bmc(p, y, jnp.float32(sigma**2)), np_bmc(p, y, sigma**2))


def test_bmc_multidim_far_from_origin_keeps_float32_accuracy():
  p, y = data(b=32, d=3, scale=2.0)
  p, y = p + 60, y + 60  # age-like magnitudes; the distance expansion is centred first
  close(bmc(p, y, 0.25), np_bmc(p, y, 0.25), rtol=1e-5)


def test_bmc_gradient_matches_closed_form():
  p, y = data(b=10)
  v = 1.7**2
  grad = jax.jit(jax.grad(losses.bmc_loss))(p, y, v)
  p64, y64 = p.astype(np.float64), y.astype(np.float64)
  logits = -(p64 - y64.T) ** 2 / (2 * v)
  s = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
  close(grad, 2 / 10 * (s @ y64 - y64), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("d", [1, 2])
def test_bmc_sigma_gradient_finite_difference_and_closed_form(d):
  p, y = data(b=9, d=d)
  sigma, h = 1.3, 1e-5
  with jax.enable_x64(True):
    grad = jax.jit(jax.grad(lambda s: losses.bmc_loss(p.astype(np.float64), y.astype(np.float64),
                                                      s**2)))(jnp.float64(sigma))
  scale = 2 * sigma**2  # stop_gradient: the scale is a constant for the σ-gradient
  fd = (np_bmc(p, y, (sigma + h) ** 2, scale) - np_bmc(p, y, (sigma - h) ** 2, scale)) / (2 * h)
  close(grad, fd, rtol=1e-6)
  dist2 = ((p.astype(np.float64)[:, None] - y.astype(np.float64)[None]) ** 2).sum(-1)
  logits = -dist2 / (2 * sigma**2)
  s = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
  closed = 2 / (9 * sigma) * np.sum((s * dist2).sum(1) - np.diag(dist2))
  close(grad, closed, rtol=1e-9)


def test_bmc_duplicated_targets_floor():
  y = np.array([[3.0], [3.0]], np.float32)
  close(bmc(y, y, 1.0), 2 * math.log(2), rtol=1e-6)


def test_bmc_sigma_sign_invariance():
  p, y = data(b=8)
  loss = jax.jit(jax.value_and_grad(lambda s: losses.bmc_loss(p, y, s**2)))
  (value, grad), (value_neg, grad_neg) = loss(2.0), loss(-2.0)
  assert float(value_neg) == float(value)
  close(grad_neg, -float(grad), rtol=1e-7)


def test_bmc_batch_of_one_raises_and_masked_to_one_is_zero():
  p, y = data(b=6)
  with pytest.raises(ValueError, match="at least 2 rows"):
    losses.bmc_loss(p[:1], y[:1], 1.0)
  step = jax.jit(jax.value_and_grad(losses.bmc_loss))
  for mask in (np.arange(6) == 2, np.zeros(6, bool)):
    value, grad = step(p, y, 1.0, mask=mask)
    assert float(value) == 0.0 and np.all(np.asarray(grad) == 0)
  assert float(bmc(p, y, 1.0, mask=np.arange(6) == 2, num_negatives=3)) == 0.0


def test_bmc_down_sampled_matches_numpy():
  p, y = data(b=10, d=2)
  v, s = 2.0, 3
  rows = []
  for i in range(10):
    negatives = [j for j in range(10) if j != i][:s]  # the first S targets other than its own
    cols = [i] + negatives
    logits = -((p[i].astype(np.float64) - y[cols]) ** 2).sum(-1) / (2 * v)
    rows.append(logsumexp(logits) - logits[0])
  close(bmc(p, y, v, num_negatives=s), 2 * v * np.mean(rows))
  close(bmc(p, y, v, num_negatives=9), np_bmc(p, y, v))


def np_bmc_masked(p, y, v, valid, scale=None):
  """Rows: valid ones only; columns of row i: the valid targets and its own (the pre-blocking
  formula: a [B, B] logit matrix with −inf off the mask)."""
  p, y = p.astype(np.float64), y.astype(np.float64)
  logits = -((p[:, None, :] - y[None, :, :]) ** 2).sum(-1) / (2 * v)
  logits = np.where(valid[None, :] | np.eye(len(p), dtype=bool), logits, -np.inf)
  rows = logsumexp(logits, axis=1) - np.diag(logits)
  return (2 * v if scale is None else scale) * rows[valid].mean()


@pytest.mark.parametrize("d", [1, 3])
def test_bmc_in_row_blocks_matches_the_dense_formula_and_finite_differences(monkeypatch, d):
  monkeypatch.setattr(losses, "_BMC_BLOCK_ELEMENTS", 256)  # B = 37: 7 blocks of 6 rows, 5 padded
  p, y = data(b=37, d=d, scale=2.0)
  valid = np.arange(37) % 5 != 1
  v = 1.3**2
  loss = jax.jit(losses.bmc_loss)
  close(loss(p, y, v, mask=valid), np_bmc_masked(p, y, v, valid), rtol=1e-5)
  close(loss(p, y, v), np_bmc(p, y, v), rtol=1e-5)
  with jax.enable_x64(True):
    p64, y64 = p.astype(np.float64), y.astype(np.float64)
    grads = jax.jit(jax.grad(lambda q, t, s: losses.bmc_loss(q, t, s**2, mask=valid), argnums=(0, 1, 2)))(
        p64, y64, np.float64(1.3))
  h, rng = 1e-6, np.random.default_rng(3)
  scale = 2 * v  # the stop-gradient scale is a constant for every derivative
  for which, grad in ((0, grads[0]), (1, grads[1])):
    for i, k in zip(rng.integers(0, 37, 4), rng.integers(0, d, 4)):
      up, down = [p64.copy(), y64.copy()], [p64.copy(), y64.copy()]
      up[which][i, k] += h
      down[which][i, k] -= h
      fd = (np_bmc_masked(*up, v, valid) - np_bmc_masked(*down, v, valid)) / (2 * h)
      close(grad[i, k], fd, rtol=1e-5, atol=1e-8)
  fd = (np_bmc_masked(p64, y64, (1.3 + h) ** 2, valid, scale)
        - np_bmc_masked(p64, y64, (1.3 - h) ** 2, valid, scale)) / (2 * h)
  close(grads[2], fd, rtol=1e-5)


def test_bmc_at_a_multi_block_batch_matches_the_dense_formula():
  p, y = data(b=2048, d=1, scale=3.0)  # default blocks: 4 blocks of 512 rows
  close(bmc(p, y, 2.0), np_bmc(p, y, 2.0), rtol=1e-5)


def test_bmc_value_and_gradient_at_4096_match_the_dense_float64_formula():
  """The benchmarked size (docs/benchmarks.md, "Balanced MSE at large batch"): value within 1e-5 relative, the
  gradient to the predictions against the closed form 2/B · (softmax(logits) @ y − y) (scale 2σ², d = 1)."""
  b, v = 4096, 2.0
  p, y = data(b=b, d=1, scale=3.0)
  value, grad = jax.jit(jax.value_and_grad(losses.bmc_loss))(p, y, v)
  close(value, np_bmc(p, y, v), rtol=1e-5)
  p64, y64 = p.astype(np.float64), y.astype(np.float64)
  logits = -(p64 - y64.T) ** 2 / (2 * v)
  s = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
  close(grad, 2 / b * (s @ y64 - y64), rtol=1e-4, atol=1e-8)


# ----------------------------------------------------------------------------------------------
# GAI.

def test_gai_1d_matches_reference_formula_for_all_cov_layouts():
  p, y = data(b=16)
  g = GMM_1D
  expected = np_gai_1d(p, y, 1.5, g["gmm_means"], g["gmm_covs"], g["gmm_weights"])
  layouts = [(g["gmm_means"], g["gmm_covs"]), (g["gmm_means"], g["gmm_covs"][:, None]),
             (g["gmm_means"][:, None], g["gmm_covs"][:, None, None])]
  for means, covs in layouts:
    close(gai(p, y, 1.5, means, covs, g["gmm_weights"]), expected)


@pytest.mark.parametrize("diagonal", [True, False])
def test_gai_multidim_matches_scipy(diagonal):
  rng = np.random.default_rng(12)
  p, y = data(b=8, d=3)
  means = rng.normal(size=(4, 3)).astype(np.float32) * 2
  covs = (np.stack([np.diag(rng.uniform(0.2, 2, size=3)) for _ in range(4)]).astype(np.float32)
          if diagonal else spd(4, 3))
  pi = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
  close(gai(p, y, 0.8, means, covs, pi),
        np_gai_scipy(p.astype(np.float64), y.astype(np.float64), 0.8, covs=covs.astype(np.float64),
                     means=means.astype(np.float64), pi=pi.astype(np.float64)), rtol=5e-5)


def test_gai_tends_to_mse_as_sigma_vanishes():
  p, y = data(b=8)
  with jax.enable_x64(True):
    value = gai(p.astype(np.float64), y.astype(np.float64), 1e-10, **GMM_1D)
  close(value, np.mean((p.astype(np.float64) - y) ** 2), rtol=1e-6)


def test_gai_weights_are_normalised_and_loss_can_be_negative():
  p, y = data(b=8, scale=0.3)
  g = dict(GMM_1D, gmm_weights=GMM_1D["gmm_weights"] * 7)
  close(gai(p, y, 1.0, **g), float(gai(p, y, 1.0, **GMM_1D)), rtol=1e-6)
  value = gai(y, y, 4.0, **GMM_1D)  # perfect predictions, wide noise
  expected = np_gai_1d(y, y, 4.0, GMM_1D["gmm_means"], GMM_1D["gmm_covs"], GMM_1D["gmm_weights"])
  assert expected < 0
  close(value, expected)


@pytest.mark.parametrize("d", [1, 2])
def test_gai_sigma_gradient_finite_difference(d):
  rng = np.random.default_rng(13)
  p, y = data(b=7, d=d)
  means = rng.normal(size=(3, d))
  covs = spd(3, d).astype(np.float64)
  pi = np.array([0.3, 0.3, 0.4])
  sigma, h = 0.9, 1e-5
  with jax.enable_x64(True):
    grad = jax.jit(jax.grad(lambda s: losses.gai_loss(
        p.astype(np.float64), y.astype(np.float64), s**2, means, covs, pi)))(jnp.float64(sigma))

  def unscaled(s):
    return np_gai_scipy(p.astype(np.float64), y.astype(np.float64), s**2, means, covs, pi) / (
        2 * s**2)

  fd = 2 * sigma**2 * (unscaled(sigma + h) - unscaled(sigma - h)) / (2 * h)
  close(grad, fd, rtol=1e-6)


@pytest.mark.parametrize("d", [1, 3])
def test_gai_runs_no_lapack_kernel_over_the_batch(d):
  """A fixed (concrete) prior is decomposed on the host: the jitted loss and its gradients contain
  no custom call (XLA:CPU's batched LAPACK kernels deadlock in a step sharded over CPU devices)."""
  rng = np.random.default_rng(5)
  p, y = data(b=64, d=d)
  means, covs = rng.normal(size=(4, d)), spd(4, d).astype(np.float64)
  pi = np.full(4, 0.25)
  fn = lambda p, s: losses.gai_loss(p, y, s**2, means, covs, pi)
  hlo = jax.jit(jax.value_and_grad(fn, argnums=(0, 1))).lower(p, jnp.float32(0.7)).as_text()
  assert "custom_call" not in hlo
  close(fn(p, 0.7), np_gai_scipy(p.astype(np.float64), y.astype(np.float64), 0.49, means, covs, pi), rtol=5e-5)


# ----------------------------------------------------------------------------------------------
# BNI.

def test_bni_1d_matches_numpy():
  p, y = data(b=16)
  for v in (0.3, 1.0, 5.0):
    close(bni(p, y, v, **BUCKETS_1D),
          np_bni(p, y, v, BUCKETS_1D["bucket_centers"], BUCKETS_1D["bucket_weights"]))


def test_bni_multidim_matches_numpy_and_d1_equals_1d():
  rng = np.random.default_rng(14)
  p, y = data(b=10, d=2)
  centers = rng.uniform(-5, 5, size=(30, 2)).astype(np.float32)
  weights = rng.uniform(size=30).astype(np.float32)
  close(bni(p, y, 1.2, centers, weights), np_bni(p, y, 1.2, centers, weights))
  p1, y1 = data(b=10)
  c, w = BUCKETS_1D["bucket_centers"], BUCKETS_1D["bucket_weights"]
  close(bni(p1, y1, 1.2, c[:, None], w), float(bni(p1, y1, 1.2, c, w)),
        rtol=0, atol=0)


def test_bni_small_sigma_limit():
  p, y = data(b=8)
  c, w = BUCKETS_1D["bucket_centers"].astype(np.float64), BUCKETS_1D["bucket_weights"]
  with jax.enable_x64(True):
    value = bni(p.astype(np.float64), y.astype(np.float64), 1e-8, c, w)
  p64 = p.astype(np.float64)
  expected = np.mean((p64 - y) ** 2 - ((p64 - c[None]) ** 2).min(axis=1, keepdims=True))
  close(value, expected, rtol=1e-5, atol=1e-6)


def test_bni_sigma_gradient_finite_difference():
  rng = np.random.default_rng(15)
  p, y = data(b=9, d=2)
  centers = rng.uniform(-4, 4, size=(12, 2))
  weights = rng.uniform(size=12)
  sigma, h = 1.1, 1e-5
  with jax.enable_x64(True):
    grad = jax.jit(jax.grad(lambda s: losses.bni_loss(
        p.astype(np.float64), y.astype(np.float64), s**2, centers, weights)))(jnp.float64(sigma))
  scale = 2 * sigma**2
  fd = (np_bni(p, y, (sigma + h) ** 2, centers, weights, scale)
        - np_bni(p, y, (sigma - h) ** 2, centers, weights, scale)) / (2 * h)
  close(grad, fd, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Shared behaviour: masks, jit, registry, errors.

BALANCED = {
    "bmc": dict(),
    "bmc_down": dict(num_negatives=4),
    "gai": dict(GMM_1D),
    "bni": dict(BUCKETS_1D),
}


def balanced_fn(key):
  return {"bmc": losses.bmc_loss, "bmc_down": losses.bmc_loss, "gai": losses.gai_loss,
          "bni": losses.bni_loss}[key]


@pytest.mark.parametrize("key", list(BALANCED))
def test_balanced_padded_with_mask_equals_unpadded(key):
  fn, kw = balanced_fn(key), BALANCED[key]
  p, y = data(b=10)
  pad_p = np.concatenate([p[:3], np.full((2, 1), np.nan, np.float32), p[3:],
                          np.full((3, 1), 1e30, np.float32)])
  pad_y = np.concatenate([y[:3], np.full((2, 1), np.inf, np.float32), y[3:],
                          np.zeros((3, 1), np.float32)])
  mask = np.ones(15, bool)
  mask[3:5] = mask[12:] = False
  value, grad = jax.jit(jax.value_and_grad(lambda q: fn(q, pad_y, 2.0, mask=mask, **kw)))(pad_p)
  ref_value, ref_grad = jax.jit(jax.value_and_grad(lambda q: fn(q, y, 2.0, **kw)))(p)
  close(value, float(ref_value), rtol=1e-6)
  close(np.asarray(grad)[mask], ref_grad, rtol=1e-5, atol=1e-7)
  assert np.all(np.asarray(grad)[~mask] == 0)


@pytest.mark.parametrize("name", list(HYPERS) + list(losses.BALANCED_MSE_LOSSES))
def test_registry_jit_and_grad(name):
  rng = np.random.default_rng(16)
  kwargs = {"gai": GMM_1D, "bni": BUCKETS_1D}.get(name, HYPERS.get(name, {}))
  fn = losses.get_loss(name, **kwargs)
  p, y = data(b=8)
  w, mask = rng.uniform(size=8).astype(np.float32), np.arange(8) < 6
  call = dict(noise_var=jnp.float32(1.5)) if name in losses.BALANCED_MSE_LOSSES else {}
  value, grad = jax.jit(jax.value_and_grad(
      lambda q, t, ww, m: fn(q, t, weights=ww, mask=m, **call)))(p, y, w, mask)
  assert grad.shape == p.shape and np.all(np.isfinite(grad))
  if name in losses.BALANCED_MSE_LOSSES:  # weights are ignored, as in the reference
    direct = {"bmc": bmc, "gai": gai, "bni": bni}[name]
    close(value, float(direct(p, y, 1.5, mask=mask, **kwargs)), rtol=1e-6)
  else:
    close(value, np_regression(name, p, y, w[:, None], mask[:, None], **kwargs))


def test_noise_var_traced_under_jit_and_sigma_gradient():
  p, y = data(b=8)
  step = jax.jit(jax.value_and_grad(lambda s: losses.bmc_loss(p, y, s**2)))
  value, grad = step(jnp.float32(1.2))
  close(value, np_bmc(p, y, 1.44))
  assert np.isfinite(grad)


def test_bad_inputs():
  p, y = data(b=6)
  with pytest.raises(ValueError, match=r"\[B, 1\]"):
    losses.mse(p[:, 0], y[:, 0])
  with pytest.raises(ValueError, match=r"\[B, 1\]"):
    losses.bmc_loss(p, y[:, 0], 1.0)
  with pytest.raises(ValueError, match="pred shape"):
    losses.l1(p, y[:5])
  with pytest.raises(TypeError, match="floating"):
    losses.mse(p, y.astype(np.int32))
  with pytest.raises(ValueError, match="weights has shape"):
    losses.mse(p, y, weights=np.ones(5))
  with pytest.raises(ValueError, match="mask has shape"):
    losses.mse(p, y, mask=np.ones(5))
  with pytest.raises(ValueError, match="row mask"):
    losses.bni_loss(p, y, 1.0, mask=np.ones(5), **BUCKETS_1D)
  with pytest.raises(ValueError, match=r"\[B, d\]"):
    losses.gai_loss(p.reshape(3, 2, 1), y.reshape(3, 2, 1), 1.0, **GMM_1D)
  for bad in (0.0, -1.0, np.nan):
    with pytest.raises(ValueError, match="noise_var"):
      losses.bmc_loss(p, y, jnp.float32(bad))
  with pytest.raises(ValueError, match="scalar"):
    losses.gai_loss(p, y, np.ones(1), **GMM_1D)
  with pytest.raises(ValueError, match="activate"):
    losses.focal_l1(p, y, activate="relu")
  with pytest.raises(ValueError, match="beta"):
    losses.huber(p, y, beta=0.0)
  for s in (0, 6, 2.5):
    with pytest.raises(ValueError, match="num_negatives"):
      losses.bmc_loss(p, y, 1.0, num_negatives=s)


def test_bad_priors():
  p, y = data(b=6)
  g = GMM_1D
  with pytest.raises(ValueError, match="gmm_means"):
    losses.gai_loss(p, y, 1.0, g["gmm_means"][:2], g["gmm_covs"], g["gmm_weights"])
  with pytest.raises(ValueError, match="gmm_covs"):
    losses.gai_loss(p, y, 1.0, g["gmm_means"], np.ones((3, 2, 2)), g["gmm_weights"])
  with pytest.raises(ValueError, match="positive definite"):
    losses.gai_loss(p, y, 1.0, g["gmm_means"], -g["gmm_covs"], g["gmm_weights"])
  with pytest.raises(ValueError, match="gmm_weights"):
    losses.gai_loss(p, y, 1.0, g["gmm_means"], g["gmm_covs"], -g["gmm_weights"])
  b = BUCKETS_1D
  with pytest.raises(ValueError, match="bucket_centers"):
    losses.bni_loss(p, y, 1.0, b["bucket_centers"][:-1], b["bucket_weights"])
  with pytest.raises(ValueError, match="bucket_weights"):
    losses.bni_loss(p, y, 1.0, b["bucket_centers"], np.zeros(25))


def test_registry_errors():
  with pytest.raises(ValueError, match="valid: mse, l1"):
    losses.get_loss("mae")
  with pytest.raises(ValueError, match=r"valid: \['activate', 'beta', 'gamma'\]"):
    losses.get_loss("focal_l1", alpha=1.0)
  with pytest.raises(ValueError, match="gmm_covs"):
    losses.get_loss("gai", gmm_means=GMM_1D["gmm_means"], gmm_weights=GMM_1D["gmm_weights"])
  p, y = data(b=4)
  with pytest.raises(ValueError, match="noise_var"):
    losses.get_loss("mse")(p, y, noise_var=1.0)
  with pytest.raises(ValueError, match="noise_var"):
    losses.get_loss("bmc")(p, y)


def test_validate_targets():
  losses.validate_targets(np.ones((4, 1)))
  y = np.ones((5, 2))
  y[1, 0], y[3, 1], y[4, 0] = np.nan, np.inf, -np.inf
  with pytest.raises(ValueError, match=r"3 non-finite.*1 NaN, 2 inf.*\(1, 0\), \(3, 1\), \(4, 0\)"):
    losses.validate_targets(y)
