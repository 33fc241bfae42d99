"""Steady-state timing of jitted loss + gradient (to pred and σ) for the Balanced MSE losses.

Times `jax.jit(jax.value_and_grad(loss, argnums=(pred, sigma)))` for MSE, BMC, GAI (K=8) and
BNI (M=100) over batch sizes and target dims on the current JAX backend: one compile call, then
the median of --repeats calls, each waited for with `block_until_ready`.

  python -m scripts.bench_losses [--batch_sizes 64 256 1024 4096] [--dims 1 3] [--repeats 20] \
      [--json /tmp/bench_losses.json]
"""

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from dirjax import losses


def make_loss(name: str, dim: int, rng: np.random.Generator):
  """The loss as a function of (pred, target, sigma), with priors of the benchmark's size."""
  if name == "mse":
    return lambda p, y, s: losses.mse(p, y)
  if name == "bmc":
    return lambda p, y, s: losses.bmc_loss(p, y, s**2)
  if name == "gai":
    k = 8
    a = rng.normal(size=(k, dim, dim))
    covs = (a @ np.swapaxes(a, 1, 2) / dim + 0.5 * np.eye(dim)).astype(np.float32)
    means = rng.normal(size=(k, dim)).astype(np.float32)
    weights = np.full(k, 1 / k, np.float32)
    return lambda p, y, s: losses.gai_loss(p, y, s**2, means, covs, weights)
  if name == "bni":
    m = 100
    centers = rng.uniform(-3, 3, size=(m, dim)).astype(np.float32)
    weights = rng.uniform(0.1, 1, size=m).astype(np.float32)
    return lambda p, y, s: losses.bni_loss(p, y, s**2, centers, weights)
  raise ValueError(f"unknown loss {name!r}")


def bench(name: str, batch: int, dim: int, repeats: int) -> dict:
  rng = np.random.default_rng(0)
  target = jnp.asarray(rng.normal(size=(batch, dim)), jnp.float32)
  pred = target + jnp.asarray(rng.normal(size=(batch, dim)), jnp.float32)
  sigma = jnp.float32(1.0)
  step = jax.jit(jax.value_and_grad(make_loss(name, dim, rng), argnums=(0, 2)))
  start = time.perf_counter()
  jax.block_until_ready(step(pred, target, sigma))
  compile_s = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(step(pred, target, sigma))
    times.append(time.perf_counter() - start)
  return {"loss": name, "batch": batch, "dim": dim, "compile_s": compile_s,
          "median_ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times),
          "repeats": repeats}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--losses", nargs="+", default=["mse", "bmc", "gai", "bni"])
  parser.add_argument("--batch_sizes", nargs="+", type=int, default=[64, 256, 1024, 4096])
  parser.add_argument("--dims", nargs="+", type=int, default=[1, 3])
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
  args = parser.parse_args()

  device = jax.devices()[0]
  print(f"backend={jax.default_backend()} device={device.device_kind} "
        f"({jax.device_count()} devices; single-device timing)")
  print(f"{'loss':>5} {'B':>5} {'d':>2} {'compile s':>10} {'median ms':>10} {'min ms':>8}")
  rows = []
  for dim in args.dims:
    for batch in args.batch_sizes:
      for name in args.losses:
        row = bench(name, batch, dim, args.repeats)
        rows.append(row)
        print(f"{name:>5} {batch:>5} {dim:>2} {row['compile_s']:>10.2f} "
              f"{row['median_ms']:>10.3f} {row['min_ms']:>8.3f}", flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"backend": jax.default_backend(), "device": device.device_kind, "rows": rows},
                f, indent=1)


if __name__ == "__main__":
  main()
