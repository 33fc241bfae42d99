"""VIR (`dirjax.vir`): the NIG loss and regulariser against a loop over the paper's equations with the
weight-scaled pseudo-counts written out by hand, finite-difference gradients, the PRM statistics, smoothing
and calibration against per-bucket / per-sample loops, the head's uncertainty, jit and a 4-device mesh equal
to the eager value; bad configs."""

import math
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec
from scipy import ndimage

from dirjax import sharding, vir
from tests.numerics import central_differences, reflect_smooth

LAMBDA = 0.01


def np_softplus10(t):
  return 10.0 * np.log1p(np.exp(np.asarray(t, np.float64) / 10.0))


def np_nig_loss(y, gamma, n, omega, w, valid, lam=LAMBDA):
  """mean over valid rows of NLL + λ·REG, Amini et al. 2020 Eqs. 8–9, with ν = w·n, α = 0.3 + w·n/2, β = ω."""
  total, count = 0.0, 0
  for i in range(len(y)):
    if not valid[i]:
      continue
    nu = w[i] * n[i]
    alpha = 0.3 + w[i] * n[i] / 2
    beta = omega[i]
    big_omega = 2 * beta * (1 + nu)
    err = y[i] - gamma[i]
    nll = (0.5 * math.log(math.pi / nu) - alpha * math.log(big_omega) + (alpha + 0.5) * math.log(nu * err ** 2 + big_omega)
           + math.lgamma(alpha) - math.lgamma(alpha + 0.5))
    total += nll + lam * abs(err) * (2 * nu + alpha)
    count += 1
  return total / max(count, 1)


def np_evidence(z, kernel, bias):
  out = np.asarray(z, np.float64) @ np.asarray(kernel, np.float64) + np.asarray(bias, np.float64)
  return out[:, 0], 2 + np_softplus10(out[:, 1]), np_softplus10(out[:, 2])


def np_latent_sample(h, variance_kernel, eps):
  v = (np.log1p(np.exp(np.asarray(h, np.float64) @ np.asarray(variance_kernel, np.float64))) + 1e-6) / 49
  return h + np.sqrt(v) * eps


class FakeModel:
  def __init__(self, head):
    self.head = head


def term_inputs(head, features, y, valid, weights, epoch, rng):
  return types.SimpleNamespace(model=FakeModel(head), calibrated=features, targets=y, mask=valid, weights=weights,
                               epoch=jnp.asarray(epoch, jnp.int32), rng=rng)


def vir_config(**loss):
  return ml_collections.ConfigDict({"head": {"name": "vir"}, "fds": {"enabled": False},
                                    "loss": {"name": "vir", "evidential_weight": LAMBDA, **loss}})


def batch(rows=8, dim=3, seed=0):
  rng = np.random.default_rng(seed)
  features = np.abs(rng.normal(size=(rows, dim))).astype(np.float32)
  y = rng.uniform(0, 8, (rows, 1)).astype(np.float32)
  weights = rng.uniform(0.3, 3.0, (rows, 1)).astype(np.float32)
  valid = np.array([1] * (rows - 1) + [0], bool)
  return features, y, weights, valid


def make_head(dim=3, seed=0):
  head = vir.VirHead(dim, rngs=nnx.Rngs(seed), prm={"bucket_num": 8, "bucket_start": 0})
  head.nig.kernel[...] = head.nig.kernel[...] * 5  # spread n_raw, ω_raw over the softplus' curved part
  return head


def test_term_matches_the_loop_with_weight_scaled_pseudo_counts():
  features, y, weights, valid = batch()
  head, rng = make_head(), jax.random.key(3)
  term = vir.build(vir_config().loss, vir_config(), None)
  value = term(term_inputs(head, jnp.asarray(features), jnp.asarray(y), jnp.asarray(valid), jnp.asarray(weights), 0, rng))
  eps = np.asarray(jax.random.normal(rng, features.shape))  # the step's noise; PRM is off before start_smooth
  z = np_latent_sample(features, head.variance.kernel[...], eps)
  gamma, n, omega = np_evidence(z, head.nig.kernel[...], head.nig.bias[...])
  np.testing.assert_allclose(value, np_nig_loss(y[:, 0], gamma, n, omega, weights[:, 0], valid), rtol=2e-5)
  # without weights every pseudo-count weight is 1
  value = term(term_inputs(head, jnp.asarray(features), jnp.asarray(y), jnp.asarray(valid), None, 0, rng))
  np.testing.assert_allclose(value, np_nig_loss(y[:, 0], gamma, n, omega, np.ones(8), valid), rtol=2e-5)


def test_pseudo_counts_and_nig_terms_by_hand():
  nu, alpha = vir.pseudo_counts(jnp.asarray([2.0, 5.0]), jnp.asarray([0.5, 3.0]))
  np.testing.assert_allclose(nu, [1.0, 15.0])
  np.testing.assert_allclose(alpha, [0.3 + 0.5, 0.3 + 7.5])
  # y = 1, γ = 0, ν = 1, α = 2, β = 1: Ω = 4, NLL = ½ log π − 2 log 4 + 2.5 log 5 + lnΓ(2) − lnΓ(2.5)
  expected = 0.5 * math.log(math.pi) - 2 * math.log(4) + 2.5 * math.log(5) - math.lgamma(2.5)
  np.testing.assert_allclose(vir.nig_nll(1.0, 0.0, 1.0, 2.0, 1.0), expected, rtol=1e-6)
  np.testing.assert_allclose(vir.nig_regularizer(1.0, 0.0, 1.0, 2.0), 4.0)


def test_term_finite_difference_gradient():
  features, y, weights, valid = batch(rows=6, dim=2, seed=1)
  head, rng = make_head(dim=2, seed=1), jax.random.key(0)
  term = vir.build(vir_config().loss, vir_config(), None)
  eps = np.asarray(jax.random.normal(rng, features.shape))
  z = np_latent_sample(features, head.variance.kernel[...], eps)
  bias = np.asarray(head.nig.bias[...], np.float64)
  oracle = lambda k: np_nig_loss(y[:, 0], *np_evidence(z, k, bias), weights[:, 0], valid)

  loss = lambda h: term(term_inputs(h, *map(jnp.asarray, (features, y, valid, weights)), 0, rng))
  kernel = np.asarray(head.nig.kernel[...])
  analytic = nnx.grad(loss)(head).nig.kernel[...]
  np.testing.assert_allclose(analytic, central_differences(oracle, kernel, 1e-4), rtol=2e-3, atol=2e-4)


def test_head_prediction_and_epistemic_uncertainty():
  features, _, _, _ = batch()
  head = make_head()
  gamma, std = head(jnp.asarray(features))
  g, n, omega = np_evidence(features, head.nig.kernel[...], head.nig.bias[...])  # eval: z = μ_z = h, weight 1
  alpha = 0.3 + n / 2
  np.testing.assert_allclose(gamma[:, 0], g, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(std[:, 0], np.sqrt(omega / ((alpha - 1) * n)), rtol=1e-5)


def np_bucket_statistics(latent, labels, buckets, dim):
  """Per bucket: ([μ̄ | v̄], [Vμ | Vv]) of the latent rows, v̄ = Σv/N², Vμ = mean(v + μ²) − v̄ − μ̄², Vv = 2Vμ²/(N − 1)."""
  out = {}
  for b in range(buckets):
    rows = [latent[i] for i in range(len(labels)) if int(labels[i]) == b]
    if not rows:
      continue
    rows = np.array(rows, np.float64)
    count = len(rows)
    mu, v = rows[:, :dim], rows[:, dim:]
    mu_bar, v_bar = mu.mean(0), v.sum(0) / count ** 2
    var_mu = (v + mu ** 2).mean(0) - v_bar - mu_bar ** 2
    var_v = 2 * var_mu ** 2 / (count - 1) if count > 1 else np.zeros(dim)
    out[b] = (np.concatenate([mu_bar, v_bar]), np.concatenate([var_mu, var_v]))
  return out


def test_prm_statistics_smoothing_and_calibration_match_the_loops():
  dim, buckets = 2, 8
  rng = np.random.default_rng(0)
  labels = np.array([0, 0, 1, 2, 2, 2, 4, 5, 5, 7, 7, 7], np.float32)  # buckets 3 and 6 empty, 1 and 4 single
  make_latent = lambda: np.concatenate([rng.normal(1, 1, (12, dim)), rng.uniform(0.1, 2, (12, dim))], 1).astype(np.float32)
  prm = vir.PRM(dim, bucket_num=buckets, bucket_start=0)
  delta = np.zeros(5)
  delta[2] = 1
  k = ndimage.gaussian_filter1d(delta, 2.0)
  k = k / k.sum()  # the reference kernel, normalised to sum 1

  first, second = make_latent(), make_latent()
  for epoch, latent in enumerate((first, second)):
    prm.update(prm.add_batch(prm.zero_sums(), jnp.asarray(latent), jnp.asarray(labels[:, None])), jnp.int32(epoch))

  mean0 = np.tile(np.r_[np.zeros(dim), np.ones(dim)], (buckets, 1))
  var0 = np.ones((buckets, 2 * dim))
  stats0, stats1 = np_bucket_statistics(first, labels, buckets, dim), np_bucket_statistics(second, labels, buckets, dim)
  last_mean, last_var = mean0.copy(), var0.copy()
  for b, (m, v) in stats0.items():  # epoch 0: factor 0
    last_mean[b], last_var[b] = m, v
  running_mean, running_var = last_mean.copy(), last_var.copy()
  for b, (m, v) in stats1.items():
    running_mean[b] = 0.1 * m + 0.9 * last_mean[b]
    running_var[b] = 0.1 * v + 0.9 * last_var[b]
  np.testing.assert_allclose(prm.running_mean[...], running_mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(prm.running_var[...], running_var, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(prm.running_mean_last_epoch[...], last_mean, rtol=1e-5, atol=1e-6)
  smooth_mean = np.concatenate([reflect_smooth(last_mean[:, :dim], k), reflect_smooth(last_mean[:, dim:], k ** 2)], 1)
  smooth_var = np.concatenate([reflect_smooth(last_var[:, :dim], k), reflect_smooth(last_var[:, dim:], k ** 2)], 1)
  np.testing.assert_allclose(prm.smoothed_mean_last_epoch[...], smooth_mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(prm.smoothed_var_last_epoch[...], smooth_var, rtol=1e-5, atol=1e-6)

  query = make_latent()
  expected = np.zeros_like(query, np.float64)
  for i, y in enumerate(labels):
    b = int(y)
    for d in range(dim):
      if last_var[b, d] == 0:  # a one-sample bucket has Vμ = 0: that dimension stays unchanged (deviations row 61)
        expected[i, [d, dim + d]] = query[i, [d, dim + d]]
        continue
      root_f = math.sqrt(min(max(smooth_var[b, d] / last_var[b, d], 0.1), 10))
      expected[i, d] = (query[i, d] - last_mean[b, d]) * root_f + smooth_mean[b, d]
      expected[i, dim + d] = (query[i, dim + d] + last_mean[b, dim + d]) * root_f + smooth_mean[b, dim + d]
  out = prm(jnp.asarray(query), jnp.asarray(labels[:, None]), jnp.int32(2))
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(prm(jnp.asarray(query), jnp.asarray(labels[:, None]), jnp.int32(0)), query)


def test_term_on_jit_and_a_4_device_mesh_equals_eager():
  features, y, weights, valid = batch(rows=8)
  head, rng = make_head(), jax.random.key(5)
  term = vir.build(vir_config().loss, vir_config(), None)
  prm_labels = jnp.asarray(y)
  head.prm.update(head.prm.add_batch(head.prm.zero_sums(), head.latent(jnp.asarray(features)), prm_labels), jnp.int32(0))
  head.prm.update(head.prm.add_batch(head.prm.zero_sums(), head.latent(jnp.asarray(features) + 0.5), prm_labels),
                  jnp.int32(1))
  epoch = 2  # PRM calibration on
  value = term(term_inputs(head, *map(jnp.asarray, (features, y, valid, weights)), epoch, rng))
  jitted = nnx.jit(lambda h, f, t, v, w: term(term_inputs(h, f, t, v, w, epoch, rng)))
  np.testing.assert_allclose(jitted(head, *map(jnp.asarray, (features, y, valid, weights))), value, rtol=1e-6)
  rows = NamedSharding(sharding.make_mesh(), PartitionSpec("data"))
  sharded = [jax.device_put(a, rows) for a in (features, y, valid, weights)]
  np.testing.assert_allclose(jitted(head, *sharded), value, rtol=1e-6)
  assert value != term(term_inputs(head, *map(jnp.asarray, (features, y, valid, weights)), 0, rng))  # PRM acted


def test_bad_configs():
  with pytest.raises(ValueError, match="config.head"):
    c = vir_config()
    c.head.name = "linear"
    vir.build(c.loss, c, None)
  with pytest.raises(ValueError, match="fds.enabled=False"):
    c = vir_config()
    c.fds.enabled = True
    vir.build(c.loss, c, None)
  with pytest.raises(ValueError, match="evidential_weight"):
    vir.build(vir_config(evidential_weight=-1.0).loss, vir_config(evidential_weight=-1.0), None)
  with pytest.raises(ValueError, match="label buckets"):
    vir.build_head({"name": "vir"}, 4, {}, nnx.Rngs(0))


def test_trainer_statistics_pass_targets_the_prm():
  """The end-of-epoch statistics pass (`train.Experiment.fds_pass`) updates the PRM with the latent [μ | v]."""
  from dirjax.models import mlp, regressor
  c = vir_config()
  c.fds.start_update = 5
  assert regressor.statistics_start(c) == 0  # the PRM's start_update (reference 0), not FDS's
  c.fds.enabled = True
  assert regressor.statistics_start(c) == 5
  head = make_head(dim=4)
  encoder = mlp.MLP(3, hidden=(4,), rngs=nnx.Rngs(0))
  model = regressor.Regressor(encoder, rngs=nnx.Rngs(0), head=head)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 3)), jnp.float32)
  assert model.smoothing is head.prm
  np.testing.assert_allclose(model.smoothing_features(x), head.latent(encoder(x)))
