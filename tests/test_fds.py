"""FDS against a plain-numpy re-implementation of the reference
(`agedb-dir/fds.py`, `nyud2-dir/models/fds.py`), written here."""

import csv
import os

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from scipy.ndimage import gaussian_filter1d

from dirjax import fds as fds_lib, weighting
from dirjax.fds import FDS, FDSStats, BucketSums, accumulate, bucketize, calibrate
from tests.numerics import reflect_smooth

BUFFERS = ("running_mean", "running_var", "running_mean_last_epoch", "running_var_last_epoch",
           "smoothed_mean_last_epoch", "smoothed_var_last_epoch", "num_samples_tracked")


# ----------------------------------------------------------------------------------------------
# Oracle: the reference FDS in numpy float64, loops over labels / buckets like the PyTorch code.

def ref_window(ks, sigma):
  """FDS gaussian window as the reference builds it: scipy filter of a float32 delta, / sum."""
  delta = np.zeros(ks, np.float32)
  delta[ks // 2] = 1.
  w = gaussian_filter1d(delta, sigma=sigma)
  return w / w.sum()


def ref_calibrate(x, m1, v1, m2, v2, cmin, cmax, rule):
  x = x.copy()
  if v1.sum() < 1e-10:
    return x
  if rule == "per_dim":  # age code: transform only dims with v1 != 0
    valid = v1 != 0
    x[:, valid] = (x[:, valid] - m1[valid]) * np.sqrt(np.clip(v2[valid] / v1[valid], cmin, cmax)) \
        + m2[valid]
    return x
  if (v1 <= 0).any() or (v2 < 0).any():  # NYUD2 under PyTorch >= 1.2: all-False mask
    return x
  return (x - m1) * np.sqrt(np.clip(v2 / v1, cmin, cmax)) + m2


class RefFDS:
  """The reference module's buffers and methods; `alias` reproduces the tensor aliasing (docs/deviations.md row 16) by
  literally sharing the numpy array, snapshot semantics copy it."""

  def __init__(self, dim, bucket_num, bucket_start, start_update, start_smooth, window, momentum,
               cmin, cmax, bucketing, edge, rule, alias, fill):
    self.num, self.start = bucket_num, bucket_start
    nb = bucket_num - bucket_start
    self.start_update, self.start_smooth, self.window = start_update, start_smooth, window
    self.momentum, self.cmin, self.cmax, self.rule = momentum, cmin, cmax, rule
    self.bucketing, self.edge, self.alias, self.fill = bucketing, edge, alias, fill
    self.epoch = start_update
    self.running_mean, self.running_var = np.zeros((nb, dim)), np.ones((nb, dim))
    self.running_mean_last_epoch = np.zeros((nb, dim))
    self.running_var_last_epoch = np.ones((nb, dim))
    self.smoothed_mean_last_epoch = np.zeros((nb, dim))
    self.smoothed_var_last_epoch = np.ones((nb, dim))
    self.num_samples_tracked = np.zeros(nb)

  def _groups(self, labels):
    """(relative bucket, row mask) pairs, in the reference's order of unique labels."""
    if self.bucketing == "floor10":
      b = np.floor(np.float32(labels) * np.float32(10)).astype(np.int64)
    else:
      b = np.floor(labels).astype(np.int64)
    if self.edge == "clamp":
      b = np.clip(b, self.start, self.num - 1)
    for lab in np.unique(b):
      if lab > self.num - 1 or lab < self.start:
        continue
      if lab == self.start:
        rows = b <= lab
      elif lab == self.num - 1:
        rows = b >= lab
      else:
        rows = b == lab
      yield lab - self.start, rows

  def update_last_epoch_stats(self, e):
    if e == self.epoch + 1:
      self.epoch += 1
      if self.alias:
        self.running_mean_last_epoch = self.running_mean
        self.running_var_last_epoch = self.running_var
      else:
        self.running_mean_last_epoch = self.running_mean.copy()
        self.running_var_last_epoch = self.running_var.copy()
      self.smoothed_mean_last_epoch = reflect_smooth(self.running_mean_last_epoch, self.window)
      self.smoothed_var_last_epoch = reflect_smooth(self.running_var_last_epoch, self.window)

  def update_running_stats(self, feats, labels, e):
    if e < self.epoch:
      return
    seen = set()
    for k, rows in self._groups(labels):
      f = feats[rows]
      n = len(f)
      seen.add(k)
      mean, var = f.mean(0), (f.var(0, ddof=1) if n != 1 else f.var(0))
      self.num_samples_tracked[k] += n
      factor = self.momentum if self.momentum is not None else 1 - n / self.num_samples_tracked[k]
      factor = 0 if e == self.start_update else factor
      self.running_mean[k] = (1 - factor) * mean + factor * self.running_mean[k]
      self.running_var[k] = (1 - factor) * var + factor * self.running_var[k]
    if self.fill:
      nb = len(self.running_mean)
      for k in range(nb):
        if k in seen:
          continue
        for buf in (self.running_mean, self.running_var):
          if k == 0:
            buf[0] = buf[1]
          elif k == nb - 1:
            buf[k] = buf[k - 1]
          else:
            buf[k] = (buf[k - 1] + buf[k + 1]) / 2.

  def smooth(self, feats, labels, e):
    out = feats.copy()
    if e < self.start_smooth:
      return out
    for k, rows in self._groups(labels):
      out[rows] = ref_calibrate(out[rows], self.running_mean_last_epoch[k],
                                self.running_var_last_epoch[k], self.smoothed_mean_last_epoch[k],
                                self.smoothed_var_last_epoch[k], self.cmin, self.cmax, self.rule)
    return out


# ----------------------------------------------------------------------------------------------
# Data: per-bucket feature means, empty buckets, single-sample buckets, zero-variance dims.

def make_epoch(rng, labels, dim=6, zero_dim_labels=(5,)):
  labels = rng.permutation(np.asarray(labels, np.float32))
  feats = 0.7 * labels[:, None] + rng.normal(size=(len(labels), dim)) * (1 + 0.1 * np.arange(dim))
  feats[np.isin(np.floor(labels), zero_dim_labels), 0] = 3.0  # zero variance in dim 0 of bucket 5
  return feats.astype(np.float32), labels


# bucket_num=10, bucket_start=2: buckets 2..9 (B = 8). Labels 0, 1 are below and 10, 11 above.
# Epoch label multisets: bucket 6 always empty, bucket 7 a single sample, edge labels 2 / 9
# present in some epochs and absent in others (presence pooling, docs/deviations.md R6).
AGE_EPOCH_LABELS = [
    [0, 1, 2, 2, 3, 3, 3, 4, 4, 5, 5, 5, 7, 8, 8, 9, 9, 10, 11, 11],
    [1, 1, 3, 3, 3, 4, 4, 4, 5, 5, 5, 7, 8, 8, 8, 9, 10, 10],  # no 2: labels 1 ignored (presence)
    [0, 2, 2, 2, 3, 3, 4, 5, 5, 7, 8, 8, 10, 11],  # no 9: 10, 11 ignored (presence)
    [0, 1, 2, 3, 3, 4, 4, 5, 5, 5, 7, 8, 9, 9, 11],
    [2, 2, 3, 4, 4, 4, 5, 5, 7, 8, 8, 9, 9, 9, 10],
]
AGE_BATCH_LABELS = [[0, 1, 2, 3, 4, 5, 5, 7, 9, 10, 11, 4],
                    [0, 1, 3, 4, 5, 5, 7, 8, 10, 11, 3, 8]]  # 2nd batch: no edge labels


def run_module_and_oracle(cfg, epoch_labels, batch_labels, num_epochs, batch_size=7, seed=0):
  """Drives FDS and RefFDS through the epochs, checking every buffer after each update; returns
  (epoch, module output, oracle output, input) of every calibrated batch."""
  rng = np.random.default_rng(seed)
  dim = 6
  window = ref_window(cfg.get("ks", 5), cfg.get("sigma", 2.0))
  module = FDS(dim, **cfg)
  oracle = RefFDS(dim, cfg["bucket_num"], cfg["bucket_start"], cfg.get("start_update", 0),
                  cfg.get("start_smooth", 1), window, cfg.get("momentum", 0.9),
                  cfg.get("clip_min", 0.1), cfg.get("clip_max", 10.),
                  cfg.get("bucketing", "integer"),
                  cfg.get("edge_pooling", "clamp"), cfg.get("zero_var_rule", "per_dim"),
                  cfg.get("alias_last_epoch", False), cfg.get("fill_empty", False))
  graphdef, _ = nnx.split(module)

  def calibrate_step(state, x, y, e):
    return nnx.merge(graphdef, state)(x, y, e)

  calibrate_step = jax.jit(calibrate_step)
  outputs = []
  for e in range(num_epochs):
    for labels in batch_labels:
      x, y = make_epoch(rng, labels, dim)
      got = calibrate_step(nnx.state(module), jnp.asarray(x), jnp.asarray(y)[:, None],
                           jnp.int32(e))
      want = oracle.smooth(x.astype(np.float64), y, e)
      outputs.append((e, np.asarray(got), want, x))
    feats, labels = make_epoch(rng, epoch_labels[e % len(epoch_labels)], dim)
    sums = module.zero_sums()
    n = len(labels)
    pad = -n % batch_size
    fp = np.concatenate([feats, np.full((pad, dim), np.nan, np.float32)])  # masked NaN padding
    lp = np.concatenate([labels, np.full(pad, labels[0], np.float32)])
    mask = np.arange(n + pad) < n
    for i in range(0, n + pad, batch_size):
      sl = slice(i, i + batch_size)
      sums = accumulate(sums, jnp.asarray(fp[sl]), module.buckets(jnp.asarray(lp[sl])),
                        jnp.asarray(mask[sl]))
    module.update(sums, jnp.int32(e))
    oracle.update_last_epoch_stats(e)
    oracle.update_running_stats(feats.astype(np.float64), labels, e)
    assert int(module.epoch[...]) == oracle.epoch
    for name in BUFFERS:
      np.testing.assert_allclose(np.asarray(getattr(module, name)[...]), getattr(oracle, name),
                                 rtol=2e-5, atol=2e-5, err_msg=f"{name} after epoch {e}")
  return outputs


CONFIGS = {
    "age_presence_snapshot": dict(bucket_num=10, bucket_start=2, edge_pooling="presence"),
    "age_presence_alias": dict(bucket_num=10, bucket_start=2, edge_pooling="presence",
                               alias_last_epoch=True),
    "age_clamp_alias": dict(bucket_num=10, bucket_start=2, alias_last_epoch=True),
    "whole_bucket_momentum_none": dict(bucket_num=10, bucket_start=2, zero_var_rule="whole_bucket",
                                       momentum=None, clip_min=0.2, clip_max=5.),
    "late_update_early_smooth": dict(bucket_num=10, bucket_start=2, start_update=1, start_smooth=0,
                                     ks=3, sigma=1.),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_epochs_match_numpy_reference(name):
  outputs = run_module_and_oracle(CONFIGS[name], AGE_EPOCH_LABELS, AGE_BATCH_LABELS, num_epochs=5)
  changed = False
  for e, got, want, x in outputs:
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5, err_msg=f"{name} epoch {e}")
    changed |= not np.allclose(got, x)
  assert changed  # the calibration did something in the later epochs


def test_alias_changes_results():
  """The two alias settings differ from epoch 2 on (else the test above could not tell them)."""
  snap = run_module_and_oracle(CONFIGS["age_presence_snapshot"], AGE_EPOCH_LABELS,
                               AGE_BATCH_LABELS, num_epochs=4)
  alias = run_module_and_oracle(CONFIGS["age_presence_alias"], AGE_EPOCH_LABELS,
                                AGE_BATCH_LABELS, num_epochs=4)
  for (e, a, _, _), (_, b, _, _) in zip(snap, alias):
    assert np.allclose(a, b) == (e < 2), e


def test_stsb_fill_empty_matches_reference():
  # floor10 buckets over [0, 1.2): B = 12; buckets 0 (first), 4, 5, 6 (consecutive) and 11 (last)
  # empty; epoch 1 also empties bucket 1, epoch 2 fills 0 and 5.
  labels = [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.7, 0.75, 0.8, 0.8, 0.9, 0.95, 1.0, 1.05]
  epoch_labels = [labels, labels[2:], labels + [0.05, 0.55]]
  batch_labels = [[0.05, 0.1, 0.2, 0.3, 0.45, 0.7, 0.8, 1.0, 1.1, 1.15]]
  cfg = dict(bucket_num=12, bucket_start=0, bucketing="floor10", fill_empty=True,
             alias_last_epoch=True, clip_min=0.5, clip_max=2.)
  outputs = run_module_and_oracle(cfg, epoch_labels, batch_labels, num_epochs=4)
  for e, got, want, _ in outputs:
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5, err_msg=f"epoch {e}")


@pytest.mark.parametrize("alias", [False, True])
def test_timeline_table(alias):
  """The reference's epoch timeline (start_update=0, start_smooth=1, m=0.9) as closed forms."""
  rng = np.random.default_rng(1)
  labels = np.repeat(np.arange(4), 5).astype(np.float32)
  k = labels.astype(int)
  window = ref_window(3, 1.)
  call = nnx.jit(lambda m, x, y, e: m(x, y, e))
  module = FDS(3, bucket_num=4, ks=3, sigma=1., alias_last_epoch=alias)
  stats = []  # per epoch: [2 (mean, var), 4 buckets, 3 dims]
  for e in range(3):
    x = rng.normal(size=(20, 3)).astype(np.float32) * (1 + labels[:, None]) + labels[:, None]
    out = np.asarray(call(module, jnp.asarray(x), jnp.asarray(labels)[:, None], jnp.int32(e)))
    if e < 2:  # epoch 0: no smoothing; epoch 1: initial buffers (0, 1) -> (0, 1) = identity
      np.testing.assert_array_equal(out, x)
    else:  # (m1, v1) = stats(e0) [snapshot] or EMA(e0, e1) [alias]; (m2, v2) = K * stats(e0)
      m1, v1 = 0.1 * stats[1] + 0.9 * stats[0] if alias else stats[0]
      m2, v2 = reflect_smooth(stats[0][0], window), reflect_smooth(stats[0][1], window)
      want = (x - m1[k]) * np.sqrt(np.clip(v2[k] / v1[k], 0.1, 10.)) + m2[k]
      np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    stats.append(np.stack([[x[labels == b].mean(0), x[labels == b].var(0, ddof=1)]
                           for b in range(4)], 1))
    module.update(accumulate(module.zero_sums(), jnp.asarray(x), module.buckets(labels)), e)
    ema = stats[0]
    for s in stats[1:]:
      ema = 0.1 * s + 0.9 * ema
    prev_ema = stats[0] if e < 2 else 0.1 * stats[1] + 0.9 * stats[0]
    want_last = np.stack([np.zeros((4, 3)), np.ones((4, 3))]) if e == 0 else (
        ema if alias else prev_ema)
    assert int(module.epoch[...]) == e
    running = np.stack([module.running_mean[...], module.running_var[...]])
    last = np.stack([module.running_mean_last_epoch[...], module.running_var_last_epoch[...]])
    np.testing.assert_allclose(running, ema, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(last, want_last, rtol=1e-5, atol=1e-5)
    if e > 0:
      smoothed = np.stack([module.smoothed_mean_last_epoch[...],
                           module.smoothed_var_last_epoch[...]])
      np.testing.assert_allclose(smoothed, [reflect_smooth(a, window) for a in prev_ema],
                                 rtol=1e-5, atol=1e-5)


def test_per_pixel_nyud2_matches_reference():
  """Features [B, H, W, C] and depths [B, H, W, 1]; buckets clamp(floor(10 d), 7, 29)."""
  rng = np.random.default_rng(2)
  dim = 5
  module = FDS(dim, bucket_num=30, bucket_start=7, bucketing="floor10",
               zero_var_rule="whole_bucket", clip_min=0.2, clip_max=5.)
  oracle = RefFDS(dim, 30, 7, 0, 1, ref_window(5, 2.), 0.9, 0.2, 5., "floor10", "clamp",
                  "whole_bucket", False, False)

  def images():
    depth = rng.uniform(0.2, 3.6, size=(2, 3, 4, 1)).astype(np.float32)
    feats = (depth * 2 + rng.normal(size=(2, 3, 4, dim))).astype(np.float32)
    feats[..., 0] = np.where(depth[..., 0] < 1.5, 0., feats[..., 0])  # dead channel in low buckets
    return feats, depth

  for e in range(4):
    x, d = images()
    got = np.asarray(nnx.jit(lambda m, a, b, c: m(a, b, c))(module, x, d, jnp.int32(e)))
    want = oracle.smooth(x.reshape(-1, dim).astype(np.float64), d.reshape(-1), e)
    np.testing.assert_allclose(got.reshape(-1, dim), want, rtol=2e-5, atol=2e-5)
    sums = module.zero_sums()
    stats_x, stats_d = [], []
    for _ in range(3):
      x, d = images()
      stats_x.append(x.reshape(-1, dim)), stats_d.append(d.reshape(-1))
      sums = accumulate(sums, jnp.asarray(x), module.buckets(d[..., 0]), jnp.ones((2, 3, 4, 1)))
    module.update(sums, e)
    oracle.update_last_epoch_stats(e)
    oracle.update_running_stats(np.concatenate(stats_x).astype(np.float64),
                                np.concatenate(stats_d), e)
    for name in BUFFERS:
      np.testing.assert_allclose(np.asarray(getattr(module, name)[...]), getattr(oracle, name),
                                 rtol=2e-5, atol=2e-5, err_msg=name)


# ----------------------------------------------------------------------------------------------
# Pure helpers.

def test_bucketize_rules():
  ages = np.array([0., 1., 3., 4., 50., 99., 100., 120.], np.float32)
  np.testing.assert_array_equal(bucketize(ages, 100, 3), [0, 0, 0, 1, 47, 96, 96, 96])
  np.testing.assert_array_equal(bucketize(ages, 100, 3, edge_pooling="presence"),
                                [-1, -1, 0, 1, 47, 96, 97, 97])
  depth = np.array([[0.05, 0.7, 0.71, 1.99], [2.0, 9.94, 10.0, 12.]], np.float32)
  want = np.clip(np.floor(depth.astype(np.float32) * np.float32(10)), 7, 99) - 7
  np.testing.assert_array_equal(bucketize(depth, 100, 7, "floor10"), want)
  # STS-B: the reference's float32 histogram edges (y = 5 -> last bucket); float64 floor differs.
  scores = np.array([0., 0.143, 1.4, 1.8, 2.6, 2.8, 3.1, 3.6, 3.8, 4.2, 4.6, 4.99, 5.], np.float32)
  edges = np.histogram(np.array([], np.float32), bins=50, range=(0., 5.))[1]
  ref = [49 if s == 5. else np.where(edges > s)[0][0] - 1 for s in scores]
  np.testing.assert_array_equal(bucketize(scores, 50, 0, "floor10"), ref)
  assert (np.floor(scores.astype(np.float64) * 10) != ref).any()


def test_bucket_units_give_fds_the_lds_bins():
  """Incomes in $k with $5k bins from 10: bucket of bucket_units(y) = floor((y - 10) / 5), clipped."""
  binning = weighting.Binning(num_bins=40, start=10.0, bin_width=5.0)
  incomes = np.array([3.0, 10.0, 14.99, 15.0, 57.3, 209.9, 210.0, 480.0], np.float32)
  units = fds_lib.bucket_units(incomes, binning)
  np.testing.assert_allclose(units, (incomes - 10.0) / 5.0, rtol=1e-6)
  np.testing.assert_array_equal(bucketize(units, 40), [0, 0, 0, 1, 9, 39, 39, 39])
  labels = np.random.default_rng(0).uniform(0, 230, 4096).astype(np.float32)
  np.testing.assert_array_equal(bucketize(fds_lib.bucket_units(labels, binning), 40), binning.index(labels))
  np.testing.assert_array_equal(bucketize(fds_lib.bucket_units(jnp.asarray(labels), binning), 40),
                                np.clip(np.floor((labels.astype(np.float64) - 10) / 5), 0, 39))


def test_bucketize_stsb_train_labels(shared_data_dir):
  with open(os.path.join(shared_data_dir, "sts-b-dir", "train_new.tsv")) as f:
    scores = np.array([float(r["score"]) for r in csv.DictReader(f, delimiter="\t",
                                                                 quoting=csv.QUOTE_NONE)],
                      np.float32)
  edges = np.histogram(np.array([], np.float32), bins=50, range=(0., 5.))[1]
  ref = np.array([49 if s == 5. else np.where(edges > s)[0][0] - 1 for s in scores])
  got = np.asarray(bucketize(scores, 50, 0, "floor10"))
  np.testing.assert_array_equal(got, ref)
  assert len(np.unique(got)) == 50  # `train_new.tsv`: all 50 STS-B-DIR train bins are non-empty


def test_smooth_statistics_reflect_padding():
  x = np.arange(12, dtype=np.float32).reshape(4, 3) ** 2
  w = np.array([0.1, 0.2, 0.4, 0.2, 0.1], np.float32)
  m, v = fds_lib.smooth_statistics(jnp.asarray(x), jnp.asarray(2 * x), w)
  # row 0 by hand: padded rows [2, 1, 0, 1, 2] (edge not repeated)
  np.testing.assert_allclose(m[0], 0.1 * x[2] + 0.2 * x[1] + 0.4 * x[0] + 0.2 * x[1] + 0.1 * x[2],
                             rtol=1e-6)
  np.testing.assert_allclose(m, reflect_smooth(x.astype(np.float64), w), rtol=1e-6)
  np.testing.assert_allclose(v, 2 * np.asarray(m), rtol=1e-6)


def test_calibrate_formula_and_zero_variance_rules():
  m1 = np.array([[1., 2., 3.], [0., 0., 0.]], np.float32)
  v1 = np.array([[4., 0., 1.], [0., 0., 0.]], np.float32)  # bucket 1: Σ v1 = 0 -> unchanged
  m2 = np.array([[0., 1., 1.], [5., 5., 5.]], np.float32)
  v2 = np.array([[1., 1., 100.], [1., 1., 1.]], np.float32)
  x = np.array([[3., 7., 4.], [1., 1., 1.], [9., 9., 9.]], np.float32)
  b = np.array([0, 1, 5])  # id 5 is outside [0, 2): unchanged
  got = calibrate(jnp.asarray(x), jnp.asarray(b), m1, v1, m2, v2, 0.1, 10.)
  # bucket 0 by hand: dim0 (3-1)*sqrt(1/4)+0 = 1; dim1 var 0 -> kept; dim2 (4-3)*sqrt(10)+1
  np.testing.assert_allclose(got, [[1., 7., 1. + np.sqrt(10.)], [1., 1., 1.], [9., 9., 9.]],
                             rtol=1e-6)
  got = calibrate(jnp.asarray(x), jnp.asarray(b), m1, v1, m2, v2, 0.1, 10., "whole_bucket")
  np.testing.assert_array_equal(got, x)


def test_large_mean_features_keep_float32_accuracy():
  """Mean 1e3 + unit noise, 20k samples: the Chan merge keeps var accurate in float32, where the
  one-pass Σx² − nμ² (float32) formula is off by O(1)."""
  rng = np.random.default_rng(3)
  n, dim = 20_000, 8
  buckets = rng.integers(0, 5, n)
  x64 = 1e3 * (1 + np.arange(dim)) + rng.normal(size=(n, dim)) * (1 + buckets[:, None])
  x = x64.astype(np.float32)
  sums = BucketSums.zeros(5, dim)
  for i in range(0, n, 256):
    sums = accumulate(sums, jnp.asarray(x[i:i + 256]), jnp.asarray(buckets[i:i + 256]))
  for k in range(5):
    xs = x[buckets == k].astype(np.float64)  # oracle on the same float32-rounded data
    var = np.asarray(sums.m2[k]) / (len(xs) - 1)
    np.testing.assert_allclose(np.asarray(sums.mean[k]), xs.mean(0), rtol=1e-6)
    np.testing.assert_allclose(var, xs.var(0, ddof=1), rtol=2e-3)
    xs32 = x[buckets == k]
    naive = (np.sum(xs32 * xs32, 0, dtype=np.float32) - len(xs) * xs32.mean(0) ** 2) / (len(xs) - 1)
    assert np.max(np.abs(naive / xs.var(0, ddof=1) - 1)) > 0.05


def test_accumulate_sharded_equals_single_device():
  devices = jax.devices()
  assert len(devices) == 4
  mesh = Mesh(np.array(devices), ("data",))
  rows, repl = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
  rng = np.random.default_rng(4)
  module = FDS(8, bucket_num=12, bucket_start=2, edge_pooling="presence")
  single, sharded = module.zero_sums(), jax.device_put(module.zero_sums(), repl)
  for _ in range(5):
    x = (rng.normal(size=(64, 8)) + 50).astype(np.float32)
    y = rng.integers(0, 14, 64).astype(np.float32)
    mask = rng.random(64) < 0.9
    k = module.buckets(y)
    single = jax.block_until_ready(accumulate(single, jnp.asarray(x), k, jnp.asarray(mask)))
    sharded = jax.block_until_ready(accumulate(
        sharded, jax.device_put(x, rows), jax.device_put(k, rows), jax.device_put(mask, rows)))
    assert sharded.mean.sharding.is_fully_replicated
  for a, b in zip(single, sharded):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-5)
  # calibration on a sharded batch equals the single-device one
  module.update(single, 0)
  module.update(single, 1)
  x = (rng.normal(size=(64, 8)) + 50).astype(np.float32)
  y = rng.integers(0, 14, (64, 1)).astype(np.float32)
  graphdef, state = nnx.split(module)
  fn = jax.jit(lambda s, a, b: nnx.merge(graphdef, s)(a, b, jnp.int32(2)))
  want = jax.block_until_ready(fn(state, x, y))
  got = jax.block_until_ready(fn(jax.device_put(state, repl), jax.device_put(x, rows),
                                 jax.device_put(y, rows)))
  assert not np.allclose(want, x)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Gradients, modes, state.

class TinyModel(nnx.Module):

  def __init__(self, rngs):
    self.encoder = nnx.Linear(3, 4, rngs=rngs)
    self.fds = FDS(4, bucket_num=6, ks=3, sigma=1.)
    self.head = nnx.Linear(4, 1, rngs=rngs)

  def __call__(self, x, y, epoch):
    return self.head(self.fds(self.encoder(x), y, epoch))


@pytest.fixture(scope="module")
def tiny_model_state():
  """TinyModel whose FDS went through 3 epochs of statistics (active calibration from epoch 2)."""
  rng = np.random.default_rng(5)
  model = TinyModel(nnx.Rngs(0))
  for e in range(3):
    x = rng.normal(size=(60, 3)).astype(np.float32)
    y = rng.integers(0, 6, (60, 1)).astype(np.float32)
    feats = model.encoder(jnp.asarray(x)) * (1 + y)  # bucket-dependent spread
    model.fds.update(accumulate(model.fds.zero_sums(), feats, model.fds.buckets(y[:, 0])), e)
  return nnx.split(model)


@pytest.fixture
def tiny_model(tiny_model_state):
  return nnx.merge(*tiny_model_state), np.random.default_rng(6)


def test_gradients_match_finite_differences_and_skip_stats(tiny_model):
  model, rng = tiny_model
  x = jnp.asarray(rng.normal(size=(16, 3)).astype(np.float32))
  y = jnp.asarray(rng.integers(0, 6, (16, 1)).astype(np.float32))
  target = jnp.asarray(rng.normal(size=(16, 1)).astype(np.float32))
  graphdef, params, stats = nnx.split(model, nnx.Param, FDSStats)

  @jax.jit
  def loss(p, s):
    m = nnx.merge(graphdef, p, s)
    return jnp.mean((m(x, y, jnp.int32(3)) - target) ** 2)

  assert not np.allclose(model.fds(model.encoder(x), y, 3), model.encoder(x))  # FDS is active
  g_params, g_stats = jax.jit(jax.grad(loss, argnums=(0, 1), allow_int=True))(params, stats)
  for leaf in jax.tree.leaves(g_stats):  # int buffers get float0 cotangents
    assert leaf.dtype == jax.dtypes.float0 or not np.any(np.asarray(leaf))
  # central finite differences along random unit directions (float32; step 3e-3)
  flat, unravel = jax.flatten_util.ravel_pytree(params)
  g_flat = jax.flatten_util.ravel_pytree(g_params)[0]
  for seed in range(3):
    d = jax.random.normal(jax.random.key(seed), flat.shape)
    d = d / jnp.linalg.norm(d)
    eps = 3e-3
    fd = (loss(unravel(flat + eps * d), stats) - loss(unravel(flat - eps * d), stats)) / (2 * eps)
    np.testing.assert_allclose(jnp.dot(g_flat, d), fd, rtol=2e-3, atol=1e-4)


def test_gradient_wrt_features_is_the_calibration_scale(tiny_model):
  model, rng = tiny_model
  f = model.fds
  x = jnp.asarray(rng.normal(size=(10, 4)).astype(np.float32))
  y = jnp.asarray(rng.integers(0, 6, (10, 1)).astype(np.float32))
  g = jax.grad(lambda a: jnp.sum(f(a, y, 3)))(x)
  v1, v2 = np.asarray(f.running_var_last_epoch[...]), np.asarray(f.smoothed_var_last_epoch[...])
  k = y[:, 0].astype(int)
  np.testing.assert_allclose(g, np.sqrt(np.clip(v2[k] / v1[k], 0.1, 10.)), rtol=1e-5)


def test_train_eval_modes_and_state_split(tiny_model):
  model, _ = tiny_model
  x = jnp.ones((4, 4))
  y = jnp.zeros((4, 1))
  model.eval()
  assert model.fds.deterministic and model.fds(x, y, 5) is x
  model.train()
  assert not model.fds.deterministic and not np.allclose(model.fds(x, y, 5), x)
  stats = nnx.state(model, FDSStats)
  assert set(stats["fds"].keys()) == set(BUFFERS) | {"epoch"}
  assert not any(isinstance(v, FDSStats) for v in jax.tree.leaves(
      nnx.state(model, nnx.Param), is_leaf=lambda v: isinstance(v, nnx.Variable)))


def test_epoch_is_traced_no_recompile(tiny_model):
  model, _ = tiny_model
  traces = []

  @nnx.jit
  def step(m, x, y, e):
    traces.append(1)
    return m.fds(x, y, e)

  x, y = jnp.ones((4, 4)), jnp.zeros((4, 1))
  outs = [step(model, x, y, jnp.int32(e)) for e in range(3)]
  assert len(traces) == 1
  np.testing.assert_array_equal(outs[0], x)  # epoch 0 < start_smooth
  assert not np.allclose(outs[2], x)


def test_call_mask_and_batch_presence_pooling():
  """Masked rows stay unchanged and do not count as present edge labels (presence pooling, R6, in a batch)."""
  f = FDS(2, bucket_num=5, bucket_start=1, ks=3, sigma=1., edge_pooling="presence")
  f.running_mean_last_epoch[...] = jnp.ones((4, 2))
  f.running_var_last_epoch[...] = jnp.full((4, 2), 4.)
  f.smoothed_mean_last_epoch[...] = jnp.zeros((4, 2))
  x = jnp.asarray([[3., 5.], [7., 9.], [11., 13.]])
  y = jnp.asarray([[0.], [1.], [2.]])  # label 0 is below bucket_start = 1
  by_hand = (np.asarray(x) - 1.) * 0.5  # (x - 1) * sqrt(1 / 4) + 0
  np.testing.assert_allclose(f(x, y, 1), by_hand)  # label 1 present: label 0 pooled into it
  np.testing.assert_allclose(f(x, y, 1, mask=jnp.asarray([True, False, True])),
                             [x[0], x[1], by_hand[2]])


# ----------------------------------------------------------------------------------------------
# Bad input.

@pytest.mark.parametrize("kwargs, match", [
    (dict(ks=4), "ks must be odd"),
    (dict(bucket_num=3, ks=7), "ks must be odd"),
    (dict(momentum=1.0), "momentum"),
    (dict(clip_min=0.), "clip_min"),
    (dict(clip_min=3., clip_max=2.), "clip_min"),
    (dict(bucket_num=2, bucket_start=2), "must exceed"),
    (dict(bucket_num=2, ks=1, fill_empty=True), "fill_empty"),
    (dict(bucketing="round"), "bucketing"),
    (dict(edge_pooling="drop"), "edge_pooling"),
    (dict(zero_var_rule="bug"), "zero_var_rule"),
])
def test_constructor_rejects_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    FDS(4, **kwargs)


def test_call_and_accumulate_reject_bad_inputs():
  f = FDS(4, bucket_num=10)
  x = jnp.ones((5, 4))
  with pytest.raises(ValueError, match="labels must have shape"):
    f(x, jnp.zeros((5,)), 1)
  with pytest.raises(ValueError, match="dims"):
    f(jnp.ones((5, 3)), jnp.zeros((5, 1)), 1)
  with pytest.raises(ValueError, match="epoch"):
    f(x, jnp.zeros((5, 1)), 1.5)
  with pytest.raises(ValueError, match="NaN"):
    f(x, jnp.array([[0.], [np.nan], [1.], [2.], [3.]]), 1)
  with pytest.raises(ValueError, match="NaN"):
    bucketize(np.array([1., np.inf]), 10)
  with pytest.raises(ValueError, match="buckets shape"):
    accumulate(f.zero_sums(), x, jnp.zeros((5, 1), jnp.int32))
  with pytest.raises(ValueError, match="mask shape"):
    accumulate(f.zero_sums(), x, jnp.zeros((5,), jnp.int32), jnp.ones((4,)))
  with pytest.raises(ValueError, match="sums are for"):
    f.update(BucketSums.zeros(9, 4), 0)
  with pytest.raises(ValueError, match="odd length"):
    fds_lib.smooth_statistics(jnp.ones((5, 2)), jnp.ones((5, 2)), [0.5, 0.5])
