"""Benchmark of FDS: one epoch's statistics update and per-batch calibration.

Default size is IMDB-WIKI-DIR's statistics pass (~200k samples x 2048-d ResNet-50 features,
100 buckets), fed in batches of 256, against a numpy re-implementation in the reference's style
(loop over unique labels with boolean masks over the epoch's [N, D] features).

  python scripts/bench_fds.py                     # full size
  python scripts/bench_fds.py --samples 20000     # quick
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dirjax.fds import FDS, accumulate


def reference_update(feats, labels, running_mean, running_var, momentum, first):
  """The reference's update_running_stats: per-label boolean masks (labels in [0, B))."""
  for label in np.unique(labels):
    rows = feats[labels == label]
    mean = rows.mean(0)
    var = rows.var(0, ddof=1) if len(rows) > 1 else rows.var(0)
    f = 0. if first else momentum
    running_mean[label] = (1 - f) * mean + f * running_mean[label]
    running_var[label] = (1 - f) * var + f * running_var[label]


def reference_calibrate(feats, labels, m1, v1, m2, v2, clip_min, clip_max):
  """The reference's smooth: loop over the batch's unique labels, write rows back."""
  out = feats.copy()
  for label in np.unique(labels):
    rows = labels == label
    factor = np.clip(v2[label] / v1[label], clip_min, clip_max)
    out[rows] = (out[rows] - m1[label]) * np.sqrt(factor) + m2[label]
  return out


def timed(fn, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--samples", type=int, default=200_000)
  parser.add_argument("--dim", type=int, default=2048)
  parser.add_argument("--buckets", type=int, default=100)
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--pool", type=int, default=32, help="distinct batches cycled through")
  parser.add_argument("--check_dims", type=int, default=32, help="dims checked against float64")
  args = parser.parse_args()
  n, dim, num, bs = args.samples, args.dim, args.buckets, args.batch
  rng = np.random.default_rng(0)
  pool_y = rng.integers(0, num, (args.pool, bs)).astype(np.float32)
  pool_x = (10. + 0.05 * pool_y[..., None]
            + rng.standard_normal((args.pool, bs, dim), np.float32)).astype(np.float32)
  steps = -(-n // bs)
  order = np.arange(steps) % args.pool
  masks = [np.arange(bs) < min(bs, n - i * bs) for i in range(steps)]  # last batch padded
  print(f"devices: {jax.devices()}")
  print(f"N={n} D={dim} buckets={num} batch={bs} ({steps} batches, pool of {args.pool})")

  fds = FDS(dim, bucket_num=num)
  dev_x, dev_y = jnp.asarray(pool_x), jnp.asarray(pool_y)
  batches = [(dev_x[i], fds.buckets(dev_y[i]), jnp.asarray(m)) for i, m in zip(order, masks)]
  jax.block_until_ready(batches)

  def epoch_sums():
    sums = fds.zero_sums()
    for x, k, m in batches:
      sums = accumulate(sums, x, k, m)
    return jax.block_until_ready(sums)

  sums = epoch_sums()  # compile
  t_acc = timed(epoch_sums, 3)
  fds.update(sums, 0)  # compile
  epoch = [0]

  def update():
    epoch[0] += 1
    fds.update(sums, epoch[0])
    jax.block_until_ready(fds.running_mean[...])

  t_upd = timed(update, 5)

  graphdef, state = nnx.split(fds)
  calibrate_step = jax.jit(lambda s, x, y: nnx.merge(graphdef, s)(x, y, jnp.int32(10)))
  x0, y0 = dev_x[0], dev_y[0][:, None]
  jax.block_until_ready(calibrate_step(state, x0, y0))
  t_cal = timed(lambda: jax.block_until_ready(calibrate_step(state, x0, y0)), 50)

  # Reference style on the same data (host numpy, float32 like the PyTorch buffers).
  feats = pool_x[order].reshape(-1, dim)[:n]
  labels = pool_y[order].reshape(-1)[:n].astype(np.int64)
  rm, rv = np.zeros((num, dim), np.float32), np.ones((num, dim), np.float32)
  t_ref = timed(lambda: reference_update(feats, labels, rm, rv, 0.9, first=True), 1)
  m1, v1 = np.asarray(fds.running_mean_last_epoch[...]), np.asarray(fds.running_var_last_epoch[...])
  m2 = np.asarray(fds.smoothed_mean_last_epoch[...])
  v2 = np.asarray(fds.smoothed_var_last_epoch[...])
  y0_np = pool_y[0].astype(np.int64)
  t_ref_cal = timed(lambda: reference_calibrate(pool_x[0], y0_np, m1, v1, m2, v2, 0.1, 10.), 20)

  # float32 accuracy of the per-epoch variance on the first dims (float64 oracle).
  c = slice(0, args.check_dims)
  f64 = feats[:, c].astype(np.float64)
  var64 = np.stack([f64[labels == k].var(0, ddof=1) for k in range(num)])
  ours = np.asarray(sums.m2[:num, c]) / (np.asarray(sums.count[:num, None]) - 1)
  f32 = feats[:, c]
  cnt = np.bincount(labels, minlength=num)[:, None].astype(np.float32)
  s1 = np.stack([f32[labels == k].sum(0, dtype=np.float32) for k in range(num)])
  s2 = np.stack([(f32[labels == k] ** 2).sum(0, dtype=np.float32) for k in range(num)])
  naive = (s2 - s1 * s1 / cnt) / (cnt - 1)
  err = lambda v: float(np.max(np.abs(v / var64 - 1)))

  rows = [
      ("accumulate, whole epoch", f"{steps} x [{bs}, {dim}]", t_acc,
       f"{1e3 * t_acc / steps:.2f} ms/batch"),
      ("FDS.update (jitted)", f"{num} x {dim}", t_upd, ""),
      ("epoch statistics total", "", t_acc + t_upd, ""),
      ("reference-style numpy update", f"[{n}, {dim}]", t_ref, "loop over labels, float32"),
      ("FDS.__call__ calibration (jitted)", f"[{bs}, {dim}]", t_cal, ""),
      ("reference-style numpy calibration", f"[{bs}, {dim}]", t_ref_cal, "loop over batch labels"),
  ]
  print(f"\n| {'what':36} | {'size':22} | {'seconds':>9} | note")
  print(f"|{'-' * 38}|{'-' * 24}|{'-' * 11}|------")
  for what, size, sec, note in rows:
    print(f"| {what:36} | {size:22} | {sec:9.4f} | {note}")
  print(f"\nvariance max rel. error vs float64 (first {args.check_dims} dims, mean ~10):"
        f" Chan merge {err(ours):.2e}, one-pass float32 sum/sum-of-squares {err(naive):.2e}")


if __name__ == "__main__":
  main()
