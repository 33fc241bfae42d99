"""Training-step throughput of dirjax on an accelerator (results: docs/benchmarks.md).

Times the trainer's own jitted functions (`dirjax.train.Experiment`: `train_step`, `fds_step`,
`fds_update`) for the IMDB-WIKI-DIR experiments `configs/imdb_<method>.py` (ResNet-50, 224², global
batch 256, Adam), one per method:

  vanilla (L1) · lds (SQINV + LDS: per-bin weights looked up on device) · fds (SQINV + FDS:
  calibration inside the step) · bmc · gai · bni (Balanced MSE, learnable σ) · dist_loss (INV +
  the soft-sort distribution term) · bsam (SQINV, SGD, two forward/backward passes per step) ·
  ranksim (L1 + RankSim) · ordinal_entropy (L1 + ordinal entropy) · conr (L1 + ConR over two views:
  both views go through the network) · rnc (Rank-N-Contrast stage 1: the RnC loss alone over two views)
  · uvote (three heads, Laplace NLL with per-head weight tables) · vir (variance branch, PRM calibration
  of the latent inside the step, reparameterised sample, NIG head and loss; no decoder)

in fp32 and bf16 compute (parameters and optimizer state stay fp32). Inputs are generated images
already on the device; the state is donated; the first call is compiled ahead of time and timed
apart (`compile_s`); then warm-up steps, then `--steps` steps dispatched back to back with one
`block_until_ready` at each end of the timed window (no per-step host sync, except on a multi-
device CPU mesh where the trainer itself must sync, see `sharding.needs_step_sync`).

The FDS epoch work is timed apart, per dtype: the statistics pass's feature step (training-mode
forward + `fds.accumulate`, images/s and the implied seconds per IMDB-WIKI epoch of 191.5k images),
`accumulate` alone over 191.5k × 2048 features in batches, and `FDS.update` (100 buckets).

Benchmark-only changes to the configs: the data is `synthetic_images` (grey 32² disks, only used
for the label tables, the GMM / bucket priors and the FDS feature width; the timed batches are
generated at `--image-size` with ages ~ N(38, 13²)), hence `in_channels = 1`; BatchNorm over the
whole batch (the configs' `bn_groups=4` emulation of DataParallel is opt-in with `--bn-groups`);
BMC/GAI/BNI train the whole network (their configs are head-only RRT stage-2 runs, whose step
would skip the backbone's backward pass and not compare with the other rows). The two-view methods
(ConR, RnC) get a second generated image per row (`inputs_view2`, as `data.two_views` batches).

  python -m scripts.benchmark --json /tmp/bench/jax.json          # accelerator, full size
  python -m scripts.benchmark --small --json /tmp/jax_small.json  # CPU smoke run (seconds)
  python -m scripts.benchmark --compare /tmp/bench/jax.json /tmp/bench/torch.json

`--compare` prints dirjax's images/s next to the PyTorch baselines of `scripts/benchmark_torch.py`
(same method and dtype) with their ratio. Only ratios from one machine and one run mean anything.
Commands, columns and results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from dirjax import fds as fds_lib
from dirjax import sharding, train

METHODS = ("vanilla", "lds", "fds", "bmc", "gai", "bni", "dist_loss", "bsam", "ranksim", "ordinal_entropy", "conr", "rnc",
           "uvote", "vir")
DTYPES = {"fp32": None, "bf16": "bfloat16"}
# IMDB-WIKI-DIR: 191.5k training images; ages 0..99 are the 100 FDS buckets.
FULL = {"model": "resnet50", "image_size": 224, "channels": 1, "batch": 256, "steps": 50, "epoch_samples": 191_500}
SMALL = {"model": "resnet18", "image_size": 32, "channels": 1, "batch": 8, "steps": 2, "epoch_samples": 2_000}
NUM_BUCKETS = 100
WARMUP_STEPS = 2
UPDATE_REPEATS = 3


def age_labels(n: int, seed: int = 0) -> np.ndarray:
  """Integer-valued ages in [0, 99], round-down of N(38, 13²): about as many distinct ages per batch
  of 256 as IMDB-WIKI (the reference FDS loops over them). Used by both benchmark scripts."""
  rng = np.random.default_rng(seed)
  return np.clip(np.floor(rng.normal(38.0, 13.0, n)), 0, NUM_BUCKETS - 1).astype(np.float32)


def bench_config(method: str, dtype: str, size: dict, bn_groups: int | None) -> ml_collections.ConfigDict:
  """The IMDB-WIKI-DIR config of `method` with the benchmark-only changes of the module docstring."""
  c = importlib.import_module(f"configs.imdb_{method}").get_config()
  c.batch_size = c.eval_batch_size = size["batch"]
  c.input_threads = 0
  c.init_from, c.train_only = "", ""
  two_views = c.data.get("two_views", False)
  c.data = ml_collections.ConfigDict({
    "name": "synthetic_images", "num_train": 4096, "num_val": size["batch"], "num_test": size["batch"],
    "max_target": float(NUM_BUCKETS), "tail": 30.0, "noise_std": 0.1, "augment": two_views, "two_views": two_views,
    "many_shot_thr": 100, "low_shot_thr": 20})
  c.model = ml_collections.ConfigDict({
    "name": size["model"], "out_dim": 1, "in_channels": size["channels"], "bn_groups": bn_groups,
    "dtype": DTYPES[dtype]})
  return c


def generated_batch(experiment: train.Experiment, size: dict, seed: int = 0) -> dict[str, jax.Array]:
  """A trainer batch (`inputs`, `targets`, `valid`, and `inputs_view2` with `data.two_views`) of N(0, 1)
  images, placed like the loader's."""
  b, s = size["batch"], size["image_size"]
  views = jax.random.normal(jax.random.key(seed), (2, b, s, s, size["channels"]), jnp.float32)
  batch = {"inputs": views[0], "targets": age_labels(b, seed)[:, None], "valid": np.ones((b,), bool)}
  if experiment.config.data.two_views:
    batch["inputs_view2"] = views[1]
  return jax.device_put(batch, sharding.data_sharding(experiment.mesh))


def _peak_bytes() -> int | None:
  """The device's high-water mark so far in this process (None where the backend keeps no stats)."""
  stats = jax.local_devices()[0].memory_stats()
  return None if not stats else int(stats.get("peak_bytes_in_use", 0)) or None


def _step_bytes(compiled) -> int | None:
  """XLA's static footprint of one call: arguments + outputs − donated aliases + temporaries."""
  m = compiled.memory_analysis()
  if m is None:
    return None
  return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes)


def rates(batch: int, steps: int, elapsed: float) -> dict:
  """Throughput of `steps` steps of `batch` images in `elapsed` seconds."""
  return {"steps": steps, "step_ms": 1e3 * elapsed / steps, "steps_per_s": steps / elapsed,
          "images_per_s": batch * steps / elapsed}


def interleaved(runners: dict[Any, Callable[[int], float]], steps: int, rounds: int) -> dict[Any, list[float]]:
  """Seconds of `steps` steps of each runner, once per round, in an order rotated by one each round,
  so load that drifts over the run (a shared machine) hits every configuration alike."""
  keys = list(runners)
  elapsed = {key: [] for key in keys}
  for r in range(rounds):
    for key in keys[r % len(keys):] + keys[:r % len(keys)]:
      elapsed[key].append(runners[key](steps))
  return elapsed


def round_rates(batch: int, steps: int, elapsed: Sequence[float]) -> dict:
  """`rates` of the median round, plus the range of images/s over the rounds."""
  per_round = [batch * steps / e for e in elapsed]
  return {**rates(batch, steps, statistics.median(elapsed)), "rounds": len(elapsed),
          "images_per_s_min": min(per_round), "images_per_s_max": max(per_round)}


def prepare_train_step(method: str, dtype: str, size: dict, bn_groups: int | None):
  """Compiles and warms up `Experiment.train_step` for one (method, dtype); returns its record,
  `run(n) -> seconds of n steps` (the state carried from call to call) and `finish()`, which adds
  the peak memory and the mean loss to the record."""
  experiment = train.Experiment(bench_config(method, dtype, size, bn_groups))
  state = experiment.init_state()
  batch = generated_batch(experiment, size)
  epoch = jax.device_put(np.int32(1), experiment.replicated)  # ≥ start_smooth: FDS calibrates
  counters = jax.device_put(train._zero_counters(), experiment.replicated)
  start = time.perf_counter()
  step = experiment.train_step.lower(state, batch, epoch, counters).compile()
  record = {"method": method, "dtype": dtype, "compile_s": time.perf_counter() - start,
            "step_bytes": _step_bytes(step)}
  sync = experiment.sync_every_step
  carry = {"state": state, "counters": counters}

  def run(n: int) -> float:
    start = time.perf_counter()
    state, counters = carry["state"], carry["counters"]
    for _ in range(n):
      state, counters = step(state, batch, epoch, counters)
      if sync:
        jax.block_until_ready(counters)
    carry.update(state=state, counters=jax.block_until_ready(counters))
    jax.block_until_ready(state)
    return time.perf_counter() - start

  def finish() -> dict:
    record["peak_bytes"] = _peak_bytes()
    record["mean_loss"] = float(carry["counters"]["loss"]) / int(carry["counters"]["steps"])
    return record

  run(WARMUP_STEPS)
  return record, run, finish


def measure_fds_epoch(dtype: str, size: dict, bn_groups: int | None) -> dict:
  """The per-epoch FDS work for one dtype: feature pass, accumulate and update (module docstring)."""
  experiment = train.Experiment(bench_config("fds", dtype, size, bn_groups))
  model_state = experiment.init_state()["model"]
  fds = nnx.merge(experiment.graphdef, model_state).fds
  batch = generated_batch(experiment, size)
  epoch = jax.device_put(np.int32(1), experiment.replicated)
  sums = jax.device_put(fds.zero_sums(), experiment.replicated)
  record = {"dtype": dtype, "samples": size["epoch_samples"], "feature_dim": fds.feature_dim,
            "buckets": fds.bucket_count}

  step = experiment.fds_step.lower(model_state, sums, batch, epoch).compile()
  model_state, sums = jax.block_until_ready(step(model_state, sums, batch, epoch))
  start = time.perf_counter()
  for _ in range(size["steps"]):
    model_state, sums = step(model_state, sums, batch, epoch)
    if experiment.sync_every_step:
      jax.block_until_ready(sums)
  model_state, sums = jax.block_until_ready((model_state, sums))
  rate = rates(size["batch"], size["steps"], time.perf_counter() - start)["images_per_s"]
  record["feature_pass_images_per_s"] = rate
  record["feature_pass_epoch_s"] = size["epoch_samples"] / rate

  features = jax.device_put(jax.random.normal(jax.random.key(1), (size["batch"], fds.feature_dim)),
                            sharding.data_sharding(experiment.mesh))
  buckets = jax.device_put(fds.buckets(batch["targets"])[:, 0], sharding.data_sharding(experiment.mesh))
  mask = batch["valid"]
  num_batches = math.ceil(size["epoch_samples"] / size["batch"])
  jax.block_until_ready(fds_lib.accumulate(sums, features, buckets, mask))  # compile
  start = time.perf_counter()
  epoch_sums = jax.device_put(fds.zero_sums(), experiment.replicated)
  for _ in range(num_batches):
    epoch_sums = fds_lib.accumulate(epoch_sums, features, buckets, mask)
    if experiment.sync_every_step:
      jax.block_until_ready(epoch_sums)
  jax.block_until_ready(epoch_sums)
  record["accumulate_s"] = time.perf_counter() - start

  update = experiment.fds_update.lower(model_state, epoch_sums, epoch).compile()
  model_state = jax.block_until_ready(update(model_state, epoch_sums, epoch))
  start = time.perf_counter()
  for _ in range(UPDATE_REPEATS):
    model_state = update(model_state, epoch_sums, epoch)
  jax.block_until_ready(model_state)
  record["update_s"] = (time.perf_counter() - start) / UPDATE_REPEATS
  record["statistics_s"] = record["accumulate_s"] + record["update_s"]
  return record


def device_info() -> dict:
  device = jax.local_devices()[0]
  return {"platform": device.platform, "device": device.device_kind, "device_count": jax.device_count(),
          "threads": len(os.sched_getaffinity(0)),  # XLA:CPU's pool uses every core the process may run on
          "versions": {"jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
                       "python": platform.python_version()}}


# ------------------------------------------------------------------------------------------------
# Reports (shared with scripts/benchmark_torch.py: both write the same JSON layout).


def _fmt(value: Any, spec: str) -> str:
  if value is None or (isinstance(value, float) and not math.isfinite(value)):
    return format("-", ">" + spec.split(".")[0])
  return format(value, spec)


def format_report(result: dict) -> str:
  """Plain-text tables of one run (either framework): train steps, then the FDS epoch work."""
  s = result["settings"]
  lines = [f"{result['framework']} on {result['device']} ({result['platform']}, {result['device_count']} device(s)): "
           f"{s['model']} {s['image_size']}px x{s['channels']}, batch {s['batch']}, {s['steps']} timed steps"
           f" x {s.get('rounds', 1)} interleaved rounds (img/s: median round; range), {result.get('threads')} CPU threads"
           + ("  [--small: CPU smoke numbers, not performance claims]" if s["small"] else ""),
           f"{'method':<16}{'variant':<13}{'dtype':<6}{'img/s':>10}{'steps/s':>9}{'ms/step':>10}"
           f"{'compile s':>10}{'peak GiB':>9}{'step GiB':>9}  {'img/s range':>17}"]
  gib = lambda v: None if v is None else v / 2 ** 30
  for r in result["train_step"]:
    lines.append(f"{r['method']:<16}{r.get('variant', 'dirjax'):<13}{r['dtype']:<6}{_fmt(r['images_per_s'], '10.1f')}"
                 f"{_fmt(r['steps_per_s'], '9.2f')}{_fmt(r['step_ms'], '10.1f')}{_fmt(r['compile_s'], '10.1f')}"
                 f"{_fmt(gib(r.get('peak_bytes')), '9.2f')}{_fmt(gib(r.get('step_bytes')), '9.2f')}"
                 f"  {_fmt(r.get('images_per_s_min'), '8.1f')}-{_fmt(r.get('images_per_s_max'), '<8.1f')}")
  if result["fds_epoch"]:
    first = result["fds_epoch"][0]
    lines.append(f"FDS epoch work ({first['samples']} samples x {first['feature_dim']} dims, "
                 f"{first['buckets']} buckets)")
    lines.append(f"{'variant':<13}{'dtype':<6}{'pass img/s':>11}{'pass s':>9}{'statistics s':>13}")
    for r in result["fds_epoch"]:
      lines.append(f"{r.get('variant', 'dirjax'):<13}{r['dtype']:<6}{_fmt(r['feature_pass_images_per_s'], '11.1f')}"
                   f"{_fmt(r['feature_pass_epoch_s'], '9.1f')}{_fmt(r['statistics_s'], '13.3f')}")
  return "\n".join(lines)


def compare(results: Sequence[dict]) -> str:
  """dirjax vs every PyTorch variant of the same (method, dtype): images/s and dirjax / torch.

  `results` are any number of result files of both scripts (e.g. one per dtype or variant, when a
  machine limits the length of one command); rows are pooled per framework.
  """
  rows = {fw: [r for res in results if res["framework"] == fw for r in res["train_step"]] for fw in ("dirjax", "torch")}
  epochs = {fw: [r for res in results if res["framework"] == fw for r in res["fds_epoch"]] for fw in ("dirjax", "torch")}
  devices = {fw: sorted({res["device"] for res in results if res["framework"] == fw}) for fw in ("dirjax", "torch")}
  lines = [f"dirjax ({', '.join(devices['dirjax'])}) vs torch ({', '.join(devices['torch'])}); ratio = dirjax / torch",
           f"{'method':<16}{'dtype':<6}{'dirjax img/s':>13}  {'torch variant':<13}{'torch img/s':>12}{'ratio':>8}"]
  for r in rows["dirjax"]:
    for t in rows["torch"]:
      if (t["method"], t["dtype"]) == (r["method"], r["dtype"]):
        lines.append(f"{r['method']:<16}{r['dtype']:<6}{r['images_per_s']:>13.1f}  {t['variant']:<13}"
                     f"{t['images_per_s']:>12.1f}{r['images_per_s'] / t['images_per_s']:>8.2f}")
  for r in epochs["dirjax"]:
    for t in epochs["torch"]:
      if t["dtype"] == r["dtype"]:
        lines.append(f"FDS epoch {r['dtype']}: statistics dirjax {r['statistics_s']:.3f} s vs torch {t['variant']} "
                     f"{t['statistics_s']:.3f} s; feature pass {r['feature_pass_images_per_s']:.1f} vs "
                     f"{t['feature_pass_images_per_s']:.1f} img/s")
  return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Entry point.


def choices(value: str, valid: Sequence[str], what: str) -> list[str]:
  """Comma list → names, each checked against `valid`."""
  chosen = [v for v in value.split(",") if v]
  unknown = sorted(set(chosen) - set(valid))
  if unknown or not chosen:
    raise ValueError(f"unknown or empty {what} {unknown or chosen}; choose from {list(valid)}")
  return chosen


def sizes(args: argparse.Namespace) -> dict:
  """FULL or SMALL with the --batch / --steps / --image-size overrides (each must be >= 1)."""
  size = dict(SMALL if args.small else FULL)
  for key in ("batch", "steps", "image_size"):
    value = getattr(args, key)
    if value is not None:
      if value < 1:
        raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got {value}")
      size[key] = value
  return size


def add_common_flags(parser: argparse.ArgumentParser, methods: Sequence[str]) -> None:
  parser.add_argument("--small", action="store_true",
                      help="ResNet-18 at 32 px, batch 8, 2 steps, 2k-sample FDS epoch (CPU smoke run)")
  parser.add_argument("--methods", default=",".join(methods), help=f"comma list from {tuple(methods)}")
  parser.add_argument("--batch", type=int, help="global batch (default 256; --small 8)")
  parser.add_argument("--steps", type=int, help="timed steps per configuration (default 50; --small 2)")
  parser.add_argument("--image-size", type=int, help="image side in pixels (default 224; --small 32)")
  parser.add_argument("--rounds", type=int, default=3,
                      help="timed rounds of --steps steps; each round runs every configuration, in a rotated order")
  parser.add_argument("--no-fds-epoch", action="store_true", help="skip the per-epoch FDS timings")
  parser.add_argument("--json", help="write the results to this path")


def write_result(result: dict, path: str | None) -> None:
  print(format_report(result))
  if path:
    with open(path, "w") as f:
      json.dump(result, f, indent=2)


def main(argv: Sequence[str] | None = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  add_common_flags(parser, METHODS)
  parser.add_argument("--dtypes", default=",".join(DTYPES), help=f"comma list from {tuple(DTYPES)}")
  parser.add_argument("--bn-groups", type=int, help="BatchNorm groups (the IMDB configs use 4; default: none)")
  parser.add_argument("--compare", nargs="+", metavar="JSON",
                      help="print the combined table of result files of both scripts and exit")
  args = parser.parse_args(argv)
  if args.compare:
    loaded = []
    for path in args.compare:
      with open(path) as f:
        loaded.append(json.load(f))
    print(compare(loaded))
    return {"compare": loaded}
  methods = choices(args.methods, METHODS, "methods")
  dtypes = choices(args.dtypes, DTYPES, "dtypes")
  size = sizes(args)
  result = {"framework": "dirjax", **device_info(),
            "settings": {**size, "small": args.small, "bn_groups": args.bn_groups, "warmup_steps": WARMUP_STEPS,
                         "rounds": args.rounds},
            "train_step": [], "fds_epoch": []}
  prepared = {(method, dtype): prepare_train_step(method, dtype, size, args.bn_groups)
              for dtype in dtypes for method in methods}
  elapsed = interleaved({key: run for key, (_, run, _) in prepared.items()}, size["steps"], args.rounds)
  for key, (record, _, finish) in prepared.items():
    record = {**finish(), **round_rates(size["batch"], size["steps"], elapsed[key])}
    result["train_step"].append(record)
    print(f"  {key[0]:<16}{key[1]:<6}{record['images_per_s']:>10.1f} img/s", file=sys.stderr, flush=True)
  del prepared
  for dtype in dtypes:
    if "fds" in methods and not args.no_fds_epoch:
      result["fds_epoch"].append(measure_fds_epoch(dtype, size, args.bn_groups))
  write_result(result, args.json)
  return result


if __name__ == "__main__":
  main()
