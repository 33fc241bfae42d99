"""Feature Distribution Smoothing (FDS; Yang et al., ICML 2021, Sec. 3.2, Eqs. 3-5).

FDS tracks per label bucket `b` the mean μ_b and the diagonal variance σ²_b of the encoder
features, smooths both over neighbouring buckets with a symmetric kernel (Eq. 4), and maps every
training feature from its bucket's statistics onto the smoothed ones (Eq. 5, diagonal form):

    z' = (z − μ_b) · sqrt(clip(σ̃²_b / σ²_b, c_min, c_max)) + μ̃_b

Pieces (reference: YyzHarry/imbalanced-regression `fds.py`, NYUD2 `models/fds.py`):

* `bucketize`: label → relative bucket id, one rule per benchmark (`bucketing`, `edge_pooling`).
* `BucketSums` + `accumulate`: one epoch's per-bucket moments, summed batch by batch inside the
  jitted statistics pass (`segment_sum`; a batch sharded over `data` just gets an all-reduce).
* `FDS.update`: the reference's `update_last_epoch_stats(e)` then `update_running_stats(e)`, as one
  jitted function of the module state; `epoch` is a traced int32, so nothing recompiles per epoch.
* `FDS.__call__`: calibration inside the training step (per-sample gather of bucket rows + one
  affine map), active only in training mode and from `start_smooth` on.

Choices and deviations (rows of docs/deviations.md in brackets):

* `alias_last_epoch` (row 16): in the age and STS-B code `running_*_last_epoch` become the very tensors
  `running_*`, so the in-place EMA of the next update also moves them and the raw statistics used
  for calibration are one epoch newer than the smoothed ones. NYUD2 copies them (snapshot). We
  default to the snapshot (`False`): Eq. 5 maps a bucket's statistics onto *their own* smoothed
  version, which only holds when both come from the same epoch; the alias is an accident of
  attribute assignment. `True` reproduces the alias for as long as it lasts in the reference
  (from the first epoch advance on; we do not emulate its breaking on checkpoint reload).
* raw features (row 17): the reference overwrites the feature tensor in place, so the features it collects for the
  statistics pass are already calibrated. Our models return the raw (uncalibrated) encoder
  features next to the prediction and the statistics are computed from those, as in NYUD2 and as
  the README describes: calibrating features with statistics computed from calibrated features
  feeds the smoothing back into itself every epoch.
* `edge_pooling` (R6): `"clamp"` (default; NYUD2/STS-B) pools labels below `bucket_start` / above
  the last bucket into the edge buckets. `"presence"` is the age code's rule: out-of-range labels
  join the edge bucket only when a label of exactly the edge bucket is in the same data (the epoch
  for statistics, the global batch for calibration; under DataParallel the reference tested each
  GPU's chunk), otherwise they are ignored.
* `clip_min`, `clip_max` (R12) default to the age range [0.1, 10]; NYUD2 uses [0.2, 5] and STS-B
  [0.5, 2] (set in their configs).
* Statistics are merged per batch in (count, mean, M2) form (Chan et al. 1979) rather than as
  Σx, Σx²: float32 Σx² − nμ² cancels catastrophically for features with a large mean.
  Counts are int32 (exact); the reference keeps float buffers.
* `bucketing="integer"` uses floor(y); the reference uses the integer age itself and would give
  each distinct non-integer label its own EMA step on the shared bucket (ages are integers).
* Non-finite features never enter the statistics: `accumulate` drops every row (sample or pixel)
  with a NaN/inf feature, as it drops padding, and `update_running_stats` leaves a bucket
  unchanged when its epoch moments are not finite. One bad input (or a transient overflow) would
  otherwise stay in `running_mean` for good and spread to the neighbouring buckets through the
  smoothing kernel. The divergence guard of the trainer still stops a run whose loss is non-finite.
* Zero variances (R11): `zero_var_rule="per_dim"` (age, STS-B) leaves dimensions with σ²_b = 0
  (or a negative smoothed variance) unchanged; `"whole_bucket"` is NYUD2 as it runs on
  PyTorch ≥ 1.2 (its bool-mask bug leaves the whole bucket unchanged as soon as one dimension has
  zero variance). Both leave a bucket unchanged when Σ_d σ²_b,d < 1e-10.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dirjax import weighting

BUCKETING_RULES = ("integer", "floor10")
EDGE_POOLING_RULES = ("clamp", "presence")
ZERO_VAR_RULES = ("per_dim", "whole_bucket")
_MIN_VAR_SUM = 1e-10  # reference: a bucket with Σ_d σ²_d below this is left unchanged


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
  if value not in choices:
    raise ValueError(f"{name}={value!r} is not one of {choices}")


def _check_finite(name: str, x: jax.typing.ArrayLike) -> None:
  """Rejects NaN/inf in concrete inputs; traced values cannot be inspected without a host sync."""
  if not isinstance(x, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(x))):
    raise ValueError(f"{name} contain NaN or inf")


def _as_epoch(epoch: jax.typing.ArrayLike) -> jax.Array:
  epoch = jnp.asarray(epoch)
  if epoch.ndim != 0 or not jnp.issubdtype(epoch.dtype, jnp.integer):
    raise ValueError(f"epoch must be an integer scalar, got shape {epoch.shape} "
                     f"dtype {epoch.dtype}")
  return epoch.astype(jnp.int32)


def _flat_mask(mask, lead_shape: tuple[int, ...]) -> jax.Array:
  """Row mask over the flattened leading axes: accepts lead_shape, lead_shape + (1,) or [B]."""
  n = int(np.prod(lead_shape))
  if mask is None:
    return jnp.ones((n,), bool)
  mask = jnp.asarray(mask)
  if mask.shape == lead_shape + (1,):
    mask = mask[..., 0]
  elif mask.shape == lead_shape[:1] and len(lead_shape) > 1:
    mask = jnp.broadcast_to(mask.reshape(mask.shape + (1,) * (len(lead_shape) - 1)), lead_shape)
  if mask.shape != lead_shape:
    raise ValueError(f"mask shape {mask.shape} fits neither {lead_shape}, {lead_shape + (1,)} "
                     f"nor {lead_shape[:1]}")
  return mask.reshape(n).astype(bool)


def bucketize(labels: jax.typing.ArrayLike, bucket_num: int, bucket_start: int = 0,
              bucketing: str = "integer", edge_pooling: str = "clamp") -> jax.Array:
  """Relative bucket id `k = b(y) − bucket_start` of every label (int32, same shape as labels).

  bucketing:
    "integer": b = floor(y) (IMDB-WIKI / AgeDB: the integer age is the bucket).
    "floor10": b = floor(float32(y) · 10), 0.1-wide buckets (STS-B scores, NYUD2 depths in m).
      float32 like the reference's histogram edges (docs/deviations.md R16: float64 moves 1.4, 2.8, ... one down).
  edge_pooling:
    "clamp": k clipped to [0, B − 1], B = bucket_num − bucket_start (NYUD2; STS-B, where the
      score 5.0 lands in bucket 49).
    "presence": out-of-range labels get k = −1 (below) or k = B (above); `accumulate` and
      `FDS.__call__` pool them into the edge bucket only when that bucket is present (docs/deviations.md R6).
  """
  _check_choice("bucketing", bucketing, BUCKETING_RULES)
  _check_choice("edge_pooling", edge_pooling, EDGE_POOLING_RULES)
  if bucket_num <= bucket_start:
    raise ValueError(f"bucket_num ({bucket_num}) must exceed bucket_start ({bucket_start})")
  _check_finite("labels", labels)
  y = jnp.asarray(labels, jnp.float32)
  b = jnp.floor(y * jnp.float32(10)) if bucketing == "floor10" else jnp.floor(y)
  num = bucket_num - bucket_start
  lo, hi = (0, num - 1) if edge_pooling == "clamp" else (-1, num)
  return jnp.clip(b - bucket_start, lo, hi).astype(jnp.int32)


def bucket_units(labels: jax.typing.ArrayLike, binning: weighting.Binning) -> jax.Array:
  """Labels measured in bins of `binning`, (y − start) / bin_width (float32, same arithmetic as
  `Binning.index`), for an FDS layer with `bucket_num=binning.num_bins, bucket_start=0` and the
  "integer" rule: its bucket of `bucket_units(y, binning)` is then `binning.index(y)`, so FDS and
  the LDS weights share one set of bins for float labels (e.g. $5k income bins starting at 10)."""
  y = jnp.asarray(labels).astype(jnp.float32)
  return (y - jnp.float32(binning.start)) * jnp.float32(1.0 / binning.bin_width)


class BucketSums(NamedTuple):
  """One epoch's per-bucket feature moments in (count, mean, M2 = Σ(x − mean)²) form.

  Rows 0..B−1 are the buckets; row B collects labels below the first bucket and row B+1 labels
  above the last one (only filled with `edge_pooling="presence"`). var = M2 / (count − 1).
  """
  count: jax.Array  # [B + 2] int32
  mean: jax.Array  # [B + 2, D] float32
  m2: jax.Array  # [B + 2, D] float32

  @classmethod
  def zeros(cls, bucket_count: int, feature_dim: int) -> BucketSums:
    rows = bucket_count + 2
    return cls(jnp.zeros((rows,), jnp.int32), jnp.zeros((rows, feature_dim), jnp.float32),
               jnp.zeros((rows, feature_dim), jnp.float32))


def _merge_moments(na, mean_a, m2a, nb, mean_b, m2b):
  """Chan, Golub & LeVeque's pairwise update of (count, mean, M2); rows with count 0 are no-ops."""
  n = na + nb
  wb = (nb.astype(jnp.float32) / jnp.maximum(n, 1).astype(jnp.float32))[..., None]
  delta = mean_b - mean_a
  mean = mean_a + delta * wb
  m2 = m2a + m2b + delta * delta * (na.astype(jnp.float32)[..., None] * wb)
  return n, mean, m2


@jax.jit
def accumulate(sums: BucketSums, features: jax.Array, buckets: jax.Array,
               mask: jax.Array | None = None) -> BucketSums:
  """Adds one batch of features [..., D] with bucket ids [...] (from `bucketize`) to `sums`.

  The batch's own per-bucket mean and M2 (two passes over the batch, `segment_sum`) are merged
  into `sums` with Chan's formula. Works on a batch sharded over devices: XLA sums each shard's
  segments locally and all-reduces them. `mask` ([...], [..., 1] or per-row [B]) drops padding
  rows / pixels; rows with a NaN/inf feature are dropped too (statistics never absorb them).
  """
  lead = features.shape[:-1]
  if buckets.shape != lead:
    raise ValueError(f"buckets shape {buckets.shape} must equal the features' leading shape {lead}")
  if features.shape[-1] != sums.mean.shape[-1]:
    raise ValueError(f"features have {features.shape[-1]} dims, sums {sums.mean.shape[-1]}")
  rows = sums.count.shape[0]
  num = rows - 2
  x = features.reshape(-1, features.shape[-1]).astype(jnp.float32)
  k = buckets.reshape(-1)
  slot = jnp.where(k < 0, num, jnp.where(k >= num, num + 1, k))
  keep = _flat_mask(mask, lead) & jnp.all(jnp.isfinite(x), axis=-1)
  x = jnp.where(keep[:, None], x, 0.)
  slot = jnp.where(keep, slot, rows)  # out of range: dropped by segment_sum
  count = jax.ops.segment_sum(jnp.ones_like(slot), slot, rows)
  mean = jax.ops.segment_sum(x, slot, rows) / jnp.maximum(count, 1).astype(jnp.float32)[:, None]
  dev = x - mean[jnp.minimum(slot, rows - 1)]
  m2 = jax.ops.segment_sum(dev * dev, slot, rows)
  return BucketSums(*_merge_moments(sums.count, sums.mean, sums.m2, count, mean, m2))


def _bucket_moments(sums: BucketSums, edge_pooling: str):
  """(count, mean, M2) of the B buckets with the out-of-range rows pooled into the edge buckets."""
  num = sums.count.shape[0] - 2
  count, mean, m2 = sums.count[:num], sums.mean[:num], sums.m2[:num]
  for edge, extra in ((0, num), (num - 1, num + 1)):
    pool = True if edge_pooling == "clamp" else count[edge] > 0
    n_extra = jnp.where(pool, sums.count[extra], 0)
    n, mu, s = _merge_moments(count[edge], mean[edge], m2[edge], n_extra, sums.mean[extra],
                              jnp.where(pool, sums.m2[extra], 0.))
    count, mean, m2 = count.at[edge].set(n), mean.at[edge].set(mu), m2.at[edge].set(s)
  return count, mean, m2


def smooth_statistics(mean: jax.Array, var: jax.Array,
                      window: Sequence[float] | np.ndarray) -> tuple[jax.Array, jax.Array]:
  """Eq. 4 over the bucket axis 0 of [B, D] statistics: (K ∗ mean, K ∗ var).

  Like the reference: reflect padding by (ks − 1)/2 WITHOUT repeating the edge (PyTorch
  `F.pad(mode='reflect')` = numpy 'reflect'), cross-correlation with the sum-normalised window,
  variances smoothed linearly.
  """
  w = np.asarray(window, np.float32)
  ks, num = w.shape[0], mean.shape[0]
  if w.ndim != 1 or ks % 2 == 0:
    raise ValueError(f"window must be 1-D with odd length, got shape {w.shape}")
  half = ks // 2
  if half >= num:
    raise ValueError(f"reflect padding needs (ks - 1) / 2 = {half} < number of buckets ({num})")

  def smooth(x):
    padded = jnp.pad(x, ((half, half), (0, 0)), mode="reflect")
    return sum(w[j] * padded[j:j + num] for j in range(ks))

  return smooth(mean), smooth(var)


def _calibration_mask(v1: jax.Array, v2: jax.Array, zero_var_rule: str) -> jax.Array:
  """[B, D] bool: where the affine map applies (reference zero-variance handling, docs/deviations.md R11)."""
  ok = (v1 > 0) & (v2 >= 0)
  if zero_var_rule == "whole_bucket":
    ok = jnp.broadcast_to(jnp.all(ok, axis=1, keepdims=True), ok.shape)
  return ok & (jnp.sum(v1, axis=1, keepdims=True) >= _MIN_VAR_SUM)


def calibrate(features: jax.Array, buckets: jax.Array, m1: jax.Array, v1: jax.Array,
              m2: jax.Array, v2: jax.Array, clip_min: float = 0.1, clip_max: float = 10.0,
              zero_var_rule: str = "per_dim") -> jax.Array:
  """Eq. 5 per sample: x' = (x − m1_k) · sqrt(clip(v2_k / v1_k, clip_min, clip_max)) + m2_k.

  features [N, D]; buckets [N] (ids outside [0, B) are left unchanged); statistics [B, D].
  Builds per-bucket (shift, scale, shift) tables with an extra identity row, gathers one row of
  each per sample and applies one fused affine map; no loop over buckets.
  """
  _check_choice("zero_var_rule", zero_var_rule, ZERO_VAR_RULES)
  num, dim = m1.shape
  if features.ndim != 2 or features.shape[1] != dim or buckets.shape != features.shape[:1]:
    raise ValueError(f"need features [N, {dim}] and buckets [N], got {features.shape} and "
                     f"{buckets.shape}")
  ok = _calibration_mask(v1, v2, zero_var_rule)
  scale = jnp.sqrt(jnp.clip(v2 / jnp.where(ok, v1, 1.), clip_min, clip_max))
  identity = lambda table, fill: jnp.concatenate([table, jnp.full((1, dim), fill, table.dtype)])
  shift_in = identity(jnp.where(ok, m1, 0.), 0.)
  scale = identity(jnp.where(ok, scale, 1.), 1.)
  shift_out = identity(jnp.where(ok, m2, 0.), 0.)
  k = jnp.where((buckets >= 0) & (buckets < num), buckets, num)
  x = features.astype(jnp.float32)
  return ((x - shift_in[k]) * scale[k] + shift_out[k]).astype(features.dtype)


def _pool_present_edges(buckets: jax.Array, bucket_count: int) -> jax.Array:
  """Presence pooling (docs/deviations.md R6) in a batch: ids −1 / B join bucket 0 / B − 1 only if
  that bucket occurs in the batch."""
  low = jnp.any(buckets == 0)
  high = jnp.any(buckets == bucket_count - 1)
  buckets = jnp.where((buckets == -1) & low, 0, buckets)
  return jnp.where((buckets == bucket_count) & high, bucket_count - 1, buckets)


def _fill_empty_buckets(values: jax.Array, empty: jax.Array) -> jax.Array:
  """STS-B make-up for buckets without samples, in increasing bucket order: first := bucket 1,
  last := (updated) bucket B − 2, interior := mean of the updated left and the old right
  neighbour.

  That sequential rule is the linear recurrence new_k = a_k · new_{k−1} + c_k, solved with an
  associative scan (no loop over buckets).
  """
  num = values.shape[0]
  interior = empty.at[0].set(False).at[-1].set(False)
  a = jnp.where(interior, 0.5, 0.).at[-1].set(jnp.where(empty[-1], 1., 0.))
  right = jnp.concatenate([values[1:], values[-1:]])
  c = jnp.where(interior[:, None], 0.5 * right, values)
  c = c.at[0].set(jnp.where(empty[0], values[1], values[0]))
  c = c.at[num - 1].set(jnp.where(empty[-1], 0., values[-1]))

  def compose(earlier, later):
    a1, c1 = earlier
    a2, c2 = later
    return a1 * a2, a2 * c1 + c2

  _, filled = jax.lax.associative_scan(compose, (jnp.broadcast_to(a[:, None], values.shape), c))
  return filled


class FDSStats(nnx.Variable):
  """FDS buffers: statistics, counts and the epoch counter. Model state saved with checkpoints,
  never optimised (not an `nnx.Param`)."""


class FDS(nnx.Module):
  """Feature Distribution Smoothing layer with the reference's buffers and epoch timeline.

  Buffers (reference names, [B, D] float32 unless stated): `running_mean` (0), `running_var` (1),
  `running_mean_last_epoch`, `running_var_last_epoch`, `smoothed_mean_last_epoch`,
  `smoothed_var_last_epoch`, `num_samples_tracked` [B] int32, `epoch` int32 (= start_update).
  With start_update=0, start_smooth=1 the calibration is the identity in epochs 0 and 1 and uses
  epoch-e−2 statistics from epoch 2 on (`agedb-dir/fds.py` update order, docs/deviations.md R10).
  """

  def __init__(self, feature_dim: int, bucket_num: int = 100, bucket_start: int = 0,
               start_update: int = 0, start_smooth: int = 1, kernel: str = "gaussian", ks: int = 5,
               sigma: float = 2.0, momentum: float | None = 0.9, clip_min: float = 0.1,
               clip_max: float = 10.0, bucketing: str = "integer", edge_pooling: str = "clamp",
               zero_var_rule: str = "per_dim", alias_last_epoch: bool = False,
               fill_empty: bool = False, deterministic: bool = False):
    _check_choice("bucketing", bucketing, BUCKETING_RULES)
    _check_choice("edge_pooling", edge_pooling, EDGE_POOLING_RULES)
    _check_choice("zero_var_rule", zero_var_rule, ZERO_VAR_RULES)
    num = bucket_num - bucket_start
    if feature_dim < 1:
      raise ValueError(f"feature_dim must be positive, got {feature_dim}")
    if num < 1:
      raise ValueError(f"bucket_num ({bucket_num}) must exceed bucket_start ({bucket_start})")
    if ks < 1 or ks % 2 == 0 or (ks - 1) // 2 >= num:
      raise ValueError(f"ks must be odd with (ks - 1) / 2 < number of buckets ({num}), got {ks}")
    if momentum is not None and not 0. <= momentum < 1.:
      raise ValueError(f"momentum must be in [0, 1) or None, got {momentum}")
    if not 0. < clip_min <= clip_max:
      raise ValueError(f"need 0 < clip_min <= clip_max, got {clip_min}, {clip_max}")
    if fill_empty and num < 3:
      raise ValueError(f"fill_empty needs at least 3 buckets, got {num}")
    self.feature_dim, self.bucket_num, self.bucket_start = feature_dim, bucket_num, bucket_start
    self.bucket_count = num
    self.start_update, self.start_smooth = start_update, start_smooth
    self.momentum, self.clip_min, self.clip_max = momentum, clip_min, clip_max
    self.bucketing, self.edge_pooling, self.zero_var_rule = bucketing, edge_pooling, zero_var_rule
    self.alias_last_epoch, self.fill_empty = alias_last_epoch, fill_empty
    self.deterministic = deterministic
    self.window = tuple(float(w) for w in weighting.kernel_window(kernel, ks, sigma,
                                                                  normalize="sum"))
    zeros = lambda: FDSStats(jnp.zeros((num, feature_dim), jnp.float32))
    ones = lambda: FDSStats(jnp.ones((num, feature_dim), jnp.float32))
    self.epoch = FDSStats(jnp.asarray(start_update, jnp.int32))
    self.running_mean, self.running_var = zeros(), ones()
    self.running_mean_last_epoch, self.running_var_last_epoch = zeros(), ones()
    self.smoothed_mean_last_epoch, self.smoothed_var_last_epoch = zeros(), ones()
    self.num_samples_tracked = FDSStats(jnp.zeros((num,), jnp.int32))

  def buckets(self, labels: jax.Array) -> jax.Array:
    """`bucketize` with this layer's rules."""
    return bucketize(labels, self.bucket_num, self.bucket_start, self.bucketing, self.edge_pooling)

  def zero_sums(self) -> BucketSums:
    """Empty per-epoch moments for `accumulate`."""
    return BucketSums.zeros(self.bucket_count, self.feature_dim)

  def add_batch(self, sums: BucketSums, features: jax.Array, labels: jax.Array,
                mask: jax.Array | None = None) -> BucketSums:
    """`accumulate` of a batch's raw features [..., D] under the buckets of `labels` [..., 1];
    `mask` is a row mask [B] or per element [..., 1]. No gradient flows into the statistics."""
    if mask is not None and mask.ndim == features.ndim:
      mask = mask[..., 0]
    return accumulate(sums, jax.lax.stop_gradient(features), self.buckets(labels)[..., 0], mask)

  def __call__(self, features: jax.Array, labels: jax.Array, epoch: jax.typing.ArrayLike,
               mask: jax.Array | None = None) -> jax.Array:
    """Calibrated features (Eq. 5) when training and epoch ≥ start_smooth, else `features`.

    features [N, D] with labels [N, 1], or per pixel [B, H, W, D] with labels [B, H, W, 1].
    `mask` (optional, any form `accumulate` accepts) leaves padding rows unchanged and keeps them
    out of the edge-presence test. Statistics get no gradient.
    """
    if self.deterministic:
      return features
    lead = features.shape[:-1]
    if features.shape[-1] != self.feature_dim:
      raise ValueError(f"features have {features.shape[-1]} dims, FDS expects {self.feature_dim}")
    if labels.shape != lead + (1,):
      raise ValueError(f"labels must have shape {lead + (1,)} for features {features.shape}, "
                       f"got {labels.shape}")
    epoch = _as_epoch(epoch)
    x = features.reshape(-1, self.feature_dim)
    out = calibrate(x, self.calibration_buckets(labels, mask, lead), *self.calibration_statistics(),
                    clip_min=self.clip_min, clip_max=self.clip_max,
                    zero_var_rule=self.zero_var_rule)
    return jnp.where(epoch >= self.start_smooth, out, x).reshape(features.shape)

  def calibration_buckets(self, labels: jax.Array, mask: jax.Array | None, lead: tuple[int, ...]) -> jax.Array:
    """[N] bucket id of each row of the flattened `lead` axes for `calibrate`: padding rows (`mask`) get
    an id outside the table (left unchanged); with presence pooling, edge ids join a present edge bucket."""
    k = jnp.where(_flat_mask(mask, lead), self.buckets(labels).reshape(-1), self.bucket_count + 1)
    if self.edge_pooling == "presence":
      k = _pool_present_edges(k, self.bucket_count)
    return k

  def calibration_statistics(self) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """(last-epoch mean, variance, smoothed mean, smoothed variance), without gradient."""
    stats = (self.running_mean_last_epoch, self.running_var_last_epoch,
             self.smoothed_mean_last_epoch, self.smoothed_var_last_epoch)
    return tuple(jax.lax.stop_gradient(s[...]) for s in stats)

  def epoch_statistics(self, count: jax.Array, mean: jax.Array, m2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean, unbiased variance; 0 for one sample) per bucket of one epoch's moments: the statistics the
    running EMA tracks (`dirjax.vir.PRM` tracks those of latent distributions instead)."""
    return mean, jnp.where((count > 1)[:, None], m2 / jnp.maximum(count - 1, 1)[:, None], 0.)

  def smoothed(self, mean: jax.Array, var: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Eq. 4: both statistics smoothed over the buckets with the kernel."""
    return smooth_statistics(mean, var, self.window)

  def update_last_epoch_stats(self, epoch: jax.typing.ArrayLike) -> None:
    """Reference `update_last_epoch_stats(e)`: only when e = epoch buffer + 1, advance the buffer,
    snapshot the running statistics as last-epoch ones and store their smoothed version."""
    epoch = _as_epoch(epoch)
    advance = epoch == self.epoch[...] + 1
    mean, var = self.running_mean[...], self.running_var[...]
    smoothed_mean, smoothed_var = self.smoothed(mean, var)
    self.epoch[...] = self.epoch[...] + advance.astype(jnp.int32)
    for buffer, new in ((self.running_mean_last_epoch, mean), (self.running_var_last_epoch, var),
                        (self.smoothed_mean_last_epoch, smoothed_mean),
                        (self.smoothed_var_last_epoch, smoothed_var)):
      buffer[...] = jnp.where(advance, new, buffer[...])

  def update_running_stats(self, sums: BucketSums, epoch: jax.typing.ArrayLike) -> None:
    """Reference `update_running_stats`: skipped when e < epoch buffer; per present bucket
    EMA of the epoch's mean and variance (unbiased, 0 for one sample) with factor `momentum`
    (0 at e = start_update; cumulative average when momentum is None)."""
    if sums.count.shape != (self.bucket_count + 2,) or sums.mean.shape[-1] != self.feature_dim:
      raise ValueError(f"sums are for {sums.count.shape[0] - 2} buckets x {sums.mean.shape[-1]} "
                       f"dims, FDS has {self.bucket_count} x {self.feature_dim}")
    epoch = _as_epoch(epoch)
    count, mean, m2 = _bucket_moments(sums, self.edge_pooling)
    proceed = epoch >= self.epoch[...]
    mean, var = self.epoch_statistics(count, mean, m2)
    finite = jnp.all(jnp.isfinite(mean), axis=-1) & jnp.all(jnp.isfinite(var), axis=-1)
    present = proceed & (count > 0) & finite
    tracked = self.num_samples_tracked[...] + jnp.where(present, count, 0)
    if self.momentum is None:
      factor = 1. - count / jnp.maximum(tracked, 1)
    else:
      factor = jnp.full(count.shape, self.momentum, jnp.float32)
    factor = jnp.where(epoch == self.start_update, 0., factor).astype(jnp.float32)[:, None]
    keep = present[:, None]
    new_mean = jnp.where(keep, (1. - factor) * mean + factor * self.running_mean[...],
                         self.running_mean[...])
    new_var = jnp.where(keep, (1. - factor) * var + factor * self.running_var[...],
                        self.running_var[...])
    if self.fill_empty:
      empty = proceed & (count == 0)
      new_mean = _fill_empty_buckets(new_mean, empty)
      new_var = _fill_empty_buckets(new_var, empty)
    self.num_samples_tracked[...] = tracked
    self.running_mean[...], self.running_var[...] = new_mean, new_var
    if self.alias_last_epoch:
      aliased = self.epoch[...] > self.start_update
      self.running_mean_last_epoch[...] = jnp.where(aliased, new_mean,
                                                    self.running_mean_last_epoch[...])
      self.running_var_last_epoch[...] = jnp.where(aliased, new_var,
                                                   self.running_var_last_epoch[...])

  def update(self, sums: BucketSums, epoch: jax.typing.ArrayLike) -> None:
    """End of epoch e: `update_last_epoch_stats(e)` then `update_running_stats(sums, e)` (this
    order, upstream DIR issue #42); `sums` holds epoch e's features. Jit it from the caller (the
    trainer's `fds_update`)."""
    self.update_last_epoch_stats(epoch)
    self.update_running_stats(sums, epoch)


def build(config, feature_dim: int | None, dataset_buckets: dict) -> FDS | None:
  """The `FDS` layer of `config.fds` (None unless `enabled`): the dataset's bucketing
  (`DataBundle.fds_buckets`) overridden by the config's non-None values."""
  if not config.enabled:
    return None
  if feature_dim is None:
    raise ValueError("fds.enabled needs an encoder that declares its `feature_dim`")
  kwargs = dict(dataset_buckets)
  kwargs.update({k: v for k, v in config.items() if k != "enabled" and v is not None})
  return FDS(feature_dim, **kwargs)
