"""Steady-state timing of jitted loss + gradient (to pred and σ) for the Balanced MSE losses.

Times `jax.jit(jax.value_and_grad(loss, argnums=(pred, sigma)))` for MSE, BMC, GAI (K=8) and
BNI (M=100) over batch sizes and target dims on the current JAX backend. Every function is
compiled first; then `--rounds` rounds each call every loss of a (B, d) once per repeat, in an
order rotated by one each round, so load that drifts over the run hits every loss alike. Reported:
the median and the range over the rounds of the per-call time (each call waited for with
`block_until_ready`).

`--baseline FILE` also times the losses of another copy of `dirjax/losses.py` (rows named
`bmc@base`, …) in the same rotation, e.g. the version on main:

  git show main:dirjax/losses.py > /tmp/losses_main.py
  python -m scripts.bench_losses --batch_sizes 4096 --dims 1 --losses bmc --baseline /tmp/losses_main.py
  python -m scripts.bench_losses [--batch_sizes 64 256 1024 4096] [--dims 1 3] [--rounds 7] \\
      [--repeats 3] [--json /tmp/bench_losses.json]
"""

import argparse
import importlib.util
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from dirjax import losses


def make_loss(module, name: str, dim: int, rng: np.random.Generator):
  """The loss of `module` as a function of (pred, target, sigma), with priors of the benchmark's size."""
  if name == "mse":
    return lambda p, y, s: module.mse(p, y)
  if name == "bmc":
    return lambda p, y, s: module.bmc_loss(p, y, s**2)
  if name == "gai":
    k = 8
    a = rng.normal(size=(k, dim, dim))
    covs = (a @ np.swapaxes(a, 1, 2) / dim + 0.5 * np.eye(dim)).astype(np.float32)
    means = rng.normal(size=(k, dim)).astype(np.float32)
    weights = np.full(k, 1 / k, np.float32)
    return lambda p, y, s: module.gai_loss(p, y, s**2, means, covs, weights)
  if name == "bni":
    m = 100
    centers = rng.uniform(-3, 3, size=(m, dim)).astype(np.float32)
    weights = rng.uniform(0.1, 1, size=m).astype(np.float32)
    return lambda p, y, s: module.bni_loss(p, y, s**2, centers, weights)
  raise ValueError(f"unknown loss {name!r}")


def load_module(path: str):
  spec = importlib.util.spec_from_file_location("baseline_losses", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def bench_group(entries: dict, batch: int, dim: int, rounds: int, repeats: int) -> list[dict]:
  """Compiles every `entries[label] = (module, loss name)` at (batch, dim), then times them interleaved."""
  rng = np.random.default_rng(0)
  target = jnp.asarray(rng.normal(size=(batch, dim)), jnp.float32)
  pred = target + jnp.asarray(rng.normal(size=(batch, dim)), jnp.float32)
  sigma = jnp.float32(1.0)
  steps, compile_s = {}, {}
  for label, (module, name) in entries.items():
    steps[label] = jax.jit(jax.value_and_grad(make_loss(module, name, dim, np.random.default_rng(1)), argnums=(0, 2)))
    start = time.perf_counter()
    jax.block_until_ready(steps[label](pred, target, sigma))
    compile_s[label] = time.perf_counter() - start
  labels, times = list(entries), {label: [] for label in entries}
  for r in range(rounds):
    for label in labels[r % len(labels):] + labels[:r % len(labels)]:
      start = time.perf_counter()
      for _ in range(repeats):
        jax.block_until_ready(steps[label](pred, target, sigma))
      times[label].append((time.perf_counter() - start) / repeats)
  return [{"loss": label, "batch": batch, "dim": dim, "compile_s": compile_s[label],
           "median_ms": 1e3 * statistics.median(t), "min_ms": 1e3 * min(t), "max_ms": 1e3 * max(t),
           "rounds": rounds, "repeats": repeats} for label, t in times.items()]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--losses", nargs="+", default=["mse", "bmc", "gai", "bni"])
  parser.add_argument("--batch_sizes", nargs="+", type=int, default=[64, 256, 1024, 4096])
  parser.add_argument("--dims", nargs="+", type=int, default=[1, 3])
  parser.add_argument("--rounds", type=int, default=7)
  parser.add_argument("--repeats", type=int, default=3, help="calls per loss per round")
  parser.add_argument("--baseline", default=None, help="another losses.py to time alongside")
  parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
  args = parser.parse_args()

  entries = {name: (losses, name) for name in args.losses}
  if args.baseline:
    base = load_module(args.baseline)
    entries.update({f"{name}@base": (base, name) for name in args.losses})
  device = jax.devices()[0]
  print(f"backend={jax.default_backend()} device={device.device_kind} "
        f"({jax.device_count()} devices; single-device timing; {args.rounds} rotated rounds)")
  print(f"{'loss':>9} {'B':>5} {'d':>2} {'compile s':>10} {'median ms':>10} {'range ms':>17}")
  rows = []
  for dim in args.dims:
    for batch in args.batch_sizes:
      for row in bench_group(entries, batch, dim, args.rounds, args.repeats):
        rows.append(row)
        print(f"{row['loss']:>9} {batch:>5} {dim:>2} {row['compile_s']:>10.2f} {row['median_ms']:>10.3f} "
              f"{row['min_ms']:>8.3f}-{row['max_ms']:<8.3f}", flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"backend": jax.default_backend(), "device": device.device_kind, "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()
