"""VIR: variational imbalanced regression (Wang & Wang, NeurIPS 2023, arXiv 2306.06599;
Wang-ML-Lab/variational-imbalanced-regression `resnet.py`, `prm.py`, `loss.py`, `evidential_deep_learning.py`).

* Probabilistic encoder (`VirHead.latent`): the latent distribution of a sample is N(μ_z, diag v_z) with
  μ_z = h, the encoder's features, and v_z = s·(softplus(W h) + 1e-6), s = 1/49 (the reference's 7×7
  pooled variance; `resnet.py` L68–114, L287–288). Training samples z = μ_z + √v_z ⊙ ε; evaluation uses z = μ_z.
* PRM (`PRM`, an `FDS` layer on the vector [μ_z | v_z]): per label bucket, running statistics of the
  latent distributions (`prm.py`): μ̄ = mean μ, v̄ = Σ v / N², Vμ = mean(v + μ²) − v̄ − μ̄², Vv = 2 Vμ²/(N − 1);
  smoothed over the buckets with the kernel k on μ̄, Vμ and k² on v̄, Vv; calibration in training
  μ' = (μ − L_μ)·√f + S_μ, v' = (v + L_v)·√f + S_v, f = clip(S_Vμ / L_Vμ, 0.1, 10) (`prm.py` as it runs:
  "+ L_v" and √f on a variance).
* NIG head (`VirHead.nig`): Linear(z) → (γ, n_raw, ω_raw), n = 2 + sp(n_raw), ω = sp(ω_raw),
  sp(t) = 10·log(1 + e^{t/10}) (`ConjugatePrior`, `evidential_deep_learning.py` L27–43). With the sample
  weight w (`config.reweight`, the reference's SQINV + LDS): ν = w·n, α = α₀ + w·n/2 (α₀ = 0.3), β = ω.
* Loss (`build`, `config.loss.name = "vir"`): mean_i [NLL_i + λ·|y_i − γ_i|·(2ν_i + α_i)], λ = 0.01, with the
  NIG negative log-likelihood of Amini et al. (NeurIPS 2020, Eq. 8) and their evidence regulariser (Eq. 9)
  (`loss.py` L9–50). The weights act only through the pseudo-counts; no KL term (commented out in the
  reference); the image reconstruction term is not implemented (docs/deviations.md row 60).
* Prediction γ; uncertainty (`VirHead.__call__`) the std of the NIG mean, √(β / ((α − 1)·ν)) with w = 1
  (epistemic; `rerun.py` L346–363), written as "uncertainty" with the predictions.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from dirjax import fds as fds_lib

ALPHA0 = 0.3           # prior α₀ (`rerun.py` prior_dict); ν₀ = 0, γ₀ and β₀ unused
VARIANCE_EPS = 1e-6    # `Conv2DNormal`: softplus(·) + 1e-6
POOLED_VARIANCE = 1 / 49  # `resnet.py` L287–288: the pooled variance of 7×7 cells


def evidence_softplus(t: jax.Array) -> jax.Array:
  """sp(t) = 10·log(1 + e^{t/10}) (torch Softplus β = 0.1, which is the identity for t/10 > 20)."""
  return jnp.where(t > 200.0, t, 10.0 * jax.nn.softplus(t / 10.0))


def nig_nll(y: jax.Array, gamma: jax.Array, nu: jax.Array, alpha: jax.Array, beta: jax.Array) -> jax.Array:
  """Per-sample NIG negative log-likelihood (Amini et al. 2020, Eq. 8), Ω = 2β(1 + ν)."""
  omega = 2.0 * beta * (1.0 + nu)
  return (0.5 * jnp.log(math.pi / nu) - alpha * jnp.log(omega) + (alpha + 0.5) * jnp.log(nu * jnp.square(y - gamma) + omega)
          + jax.scipy.special.gammaln(alpha) - jax.scipy.special.gammaln(alpha + 0.5))


def nig_regularizer(y: jax.Array, gamma: jax.Array, nu: jax.Array, alpha: jax.Array) -> jax.Array:
  """Per-sample evidence regulariser |y − γ|·(2ν + α) (Amini et al. 2020, Eq. 9)."""
  return jnp.abs(y - gamma) * (2.0 * nu + alpha)


def pseudo_counts(n: jax.Array, weights: jax.Array, alpha0: float = ALPHA0) -> tuple[jax.Array, jax.Array]:
  """(ν, α) = (w·n, α₀ + w·n/2): the sample weights scale the head's evidence (`loss.py` L9–50)."""
  return weights * n, alpha0 + 0.5 * weights * n


class PRM(fds_lib.FDS):
  """Probabilistic representation smoothing: `FDS` buffers and timeline on the latent vector [μ | v] of
  width 2L, with VIR's statistics (`epoch_statistics`), smoothing (`smoothed`) and calibration (`__call__`).
  Running means start at [0 | 1], running variances at 1 (`prm.py`)."""

  def __init__(self, latent_dim: int, **kwargs):
    super().__init__(2 * latent_dim, **kwargs)
    self.latent_dim = latent_dim
    for buffer in (self.running_mean, self.running_mean_last_epoch, self.smoothed_mean_last_epoch):
      buffer[...] = jnp.zeros_like(buffer[...]).at[:, latent_dim:].set(1.0)  # a buffer each (donated apart)

  def epoch_statistics(self, count, mean, m2):
    """[μ̄ | v̄], [Vμ | Vv] per bucket from the moments of [μ | v] (v̄ = Σv/N², Vμ = mean(v + μ²) − v̄ − μ̄²)."""
    n = jnp.maximum(count, 1).astype(jnp.float32)[:, None]
    mu, v, m2_mu = mean[:, :self.latent_dim], mean[:, self.latent_dim:], m2[:, :self.latent_dim]
    v_bar = v / n
    var_mu = v + m2_mu / n - v_bar
    var_v = jnp.where((count > 1)[:, None], 2.0 * jnp.square(var_mu) / jnp.maximum(n - 1.0, 1.0), 0.0)
    return jnp.concatenate([mu, v_bar], 1), jnp.concatenate([var_mu, var_v], 1)

  def smoothed(self, mean, var):
    """k on the μ halves, k² (the variance of a k-weighted mean) on the v halves (`utils.py` L155–183)."""
    half = self.latent_dim
    square = tuple(w * w for w in self.window)
    mean_mu, var_mu = fds_lib.smooth_statistics(mean[:, :half], var[:, :half], self.window)
    mean_v, var_v = fds_lib.smooth_statistics(mean[:, half:], var[:, half:], square)
    return jnp.concatenate([mean_mu, mean_v], 1), jnp.concatenate([var_mu, var_v], 1)

  def __call__(self, latent: jax.Array, labels: jax.Array, epoch: jax.typing.ArrayLike,
               mask: jax.Array | None = None) -> jax.Array:
    """[μ' | v'] of `latent` [N, 2L] (labels [N, 1]) when training and epoch ≥ start_smooth, else `latent`.
    Buckets with Σ L_Vμ < 1e-10 and dimensions with L_Vμ = 0 stay unchanged (as FDS); no gradient into buffers."""
    if self.deterministic:
      return latent
    if latent.ndim != 2 or latent.shape[1] != self.feature_dim or labels.shape != latent.shape[:1] + (1,):
      raise ValueError(f"PRM needs latent [N, {self.feature_dim}] and labels [N, 1], got {latent.shape}, {labels.shape}")
    half = self.latent_dim
    k = self.calibration_buckets(labels, mask, latent.shape[:1])
    last_mean, last_var, smooth_mean, smooth_var = self.calibration_statistics()
    # μ' = (μ − L_μ)·√f + S_μ and v' = (v − (−L_v))·√f + S_v: FDS's affine map, f from the μ halves' Vμ.
    calibrate = lambda x, shift_in, shift_out: fds_lib.calibrate(
      x, k, shift_in, last_var[:, :half], shift_out, smooth_var[:, :half], clip_min=self.clip_min,
      clip_max=self.clip_max, zero_var_rule=self.zero_var_rule)
    out = jnp.concatenate([calibrate(latent[:, :half], last_mean[:, :half], smooth_mean[:, :half]),
                           calibrate(latent[:, half:], -last_mean[:, half:], smooth_mean[:, half:])], 1)
    return jnp.where(fds_lib._as_epoch(epoch) >= self.start_smooth, out, latent)


class VirHead(nnx.Module):
  """Variance branch + PRM + NIG head on the encoder's features h [B, D] (latent width L = D)."""

  def __init__(self, feature_dim: int, *, rngs: nnx.Rngs, prm: dict, alpha0: float = ALPHA0,
               variance_scale: float = POOLED_VARIANCE):
    if not alpha0 > 0:  # eval α = α₀ + n/2 ≥ α₀ + 1 must exceed 1 for the NIG variance to exist
      raise ValueError(f"head.alpha0 must be > 0, got {alpha0}")
    if not variance_scale > 0:
      raise ValueError(f"head.variance_scale must be > 0, got {variance_scale}")
    self.alpha0, self.variance_scale = float(alpha0), float(variance_scale)
    self.variance = nnx.Linear(feature_dim, feature_dim, use_bias=False, rngs=rngs)
    self.nig = nnx.Linear(feature_dim, 3, rngs=rngs)
    self.prm = PRM(feature_dim, **prm)

  def latent(self, features: jax.Array) -> jax.Array:
    """[μ_z | v_z] [B, 2D]: μ_z = h, v_z = s·(softplus(W h) + 1e-6)."""
    v = self.variance_scale * (jax.nn.softplus(self.variance(features)) + VARIANCE_EPS)
    return jnp.concatenate([features, v.astype(features.dtype)], axis=-1)

  def evidence(self, z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(γ, n, ω) [B] each of latent codes z [B, L]."""
    out = self.nig(z).astype(jnp.float32)
    return out[:, 0], 2.0 + evidence_softplus(out[:, 1]), evidence_softplus(out[:, 2])

  def sample(self, features: jax.Array, targets: jax.Array, epoch: jax.Array, rng: jax.Array,
             mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Training: (γ, n, ω) of z = μ' + √v' ⊙ ε, [μ' | v'] the PRM-calibrated latent of `features`."""
    latent = self.prm(self.latent(features), targets, epoch, mask)
    mu, v = jnp.split(latent, 2, axis=-1)
    z = mu + jnp.sqrt(v) * jax.random.normal(rng, mu.shape, mu.dtype)
    return self.evidence(z)

  def __call__(self, features: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(γ [B, 1], std of the NIG mean √(β/((α − 1)ν)) [B, 1]) at z = μ_z, weight 1."""
    gamma, n, omega = self.evidence(features)
    nu, alpha = pseudo_counts(n, jnp.ones_like(n), self.alpha0)
    return gamma[:, None], jnp.sqrt(omega / ((alpha - 1.0) * nu))[:, None]


def build_head(head_config: Any, feature_dim: int, dataset_buckets: dict, rngs: nnx.Rngs) -> VirHead:
  """`VirHead` of `config.head` ({"name": "vir", "alpha0", "variance_scale", "prm": {FDS keys}}); the PRM
  buckets are the dataset's FDS buckets overridden by `head.prm`."""
  prm = dict(dataset_buckets)
  prm.update({k: v for k, v in dict(head_config.get("prm") or {}).items() if v is not None})
  if not prm:
    raise ValueError("head 'vir' needs label buckets for its PRM: this dataset has no FDS bucketing "
                     "(set head.prm.bucket_num / bucket_start)")
  return VirHead(feature_dim, rngs=rngs, prm=prm, alpha0=head_config.get("alpha0", ALPHA0),
                 variance_scale=head_config.get("variance_scale", POOLED_VARIANCE))


def statistics_start(head_config: Any) -> int:
  """The first epoch of the PRM statistics pass (`start_update`, reference 0)."""
  return int(dict(head_config.get("prm") or {}).get("start_update", 0))


def build(section: Any, config: Any, bundle: Any):
  """The VIR objective term of `config.loss` (name "vir"): key `evidential_weight` λ (reference 0.01). The
  model must have the `VirHead` (`config.head.name = "vir"`); `config.reweight` gives the pseudo-count weights."""
  head = config.get("head") or {}
  if head.get("name") != "vir":
    raise ValueError("loss.name='vir' needs config.head = {'name': 'vir', ...} (the NIG head with its PRM)")
  if config.fds.enabled:
    raise ValueError("loss 'vir' smooths its latent statistics with its own PRM; set fds.enabled=False")
  if section.get("kwargs"):
    raise ValueError(f"loss 'vir' takes no kwargs, got {dict(section.kwargs)}")
  lam = float(section.get("evidential_weight", 0.01))
  if not lam >= 0:
    raise ValueError(f"loss.evidential_weight must be >= 0, got {lam}")

  def term(inputs) -> jax.Array:
    y = inputs.targets[:, 0].astype(jnp.float32)
    gamma, n, omega = inputs.model.head.sample(inputs.calibrated, inputs.targets, inputs.epoch, inputs.rng, inputs.mask)
    valid = inputs.mask.astype(jnp.float32)
    weights = jnp.ones_like(n) if inputs.weights is None else inputs.weights[:, 0].astype(jnp.float32)
    nu, alpha = pseudo_counts(n, jnp.where(valid > 0, weights, 1.0), inputs.model.head.alpha0)  # padding rows: finite, masked out
    per_sample = nig_nll(y, gamma, nu, alpha, omega) + lam * nig_regularizer(y, gamma, nu, alpha)
    return jnp.sum(jnp.where(valid > 0, per_sample, 0.0)) / jnp.maximum(jnp.sum(valid), 1.0)

  return term
