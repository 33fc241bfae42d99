"""Input-pipeline throughput of the age benchmarks: images/s of decoded, resized, augmented batches.

  python -m scripts.bench_input --dataset=agedb_dir --data_dir=/data/agedb
  python -m scripts.bench_input --synthetic=2000          # random AgeDB-like JPEGs in a tmp dir

Times the trainer's train loader (`dirjax.data.pipeline.Loader`: shuffle → decode + resize +
normalise → crop/flip → batch → device) with 0/1/2/... reader threads, then the same element chain
through grain worker processes (`mp_prefetch`), and the per-image cost of each stage on one core.
`--cache` also prepares every split (`scripts/prepare_data.py --prepare_to`) and times the trainer's loader
on them (`data.prepared_dir`: uint8 batches, `DataBundle.device_transform` jitted) next to the on-the-fly
one, interleaved, plus the per-image costs of both paths and the load average:

  python -m scripts.bench_input --synthetic=2000 --workers=0 --cache --batches=20 --rounds=3
"""

import argparse
import itertools
import os
import sys
import tempfile
import time

import numpy as np


def write_synthetic(root: str, n: int, seed: int = 0) -> str:
  """n smooth random JPEGs (AgeDB-like sizes, 150–450 px a side) + agedb.csv (80 % train)."""
  from PIL import Image
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(root, "AgeDB"), exist_ok=True)
  rows = []
  for i in range(n):
    w, h = (int(v) for v in rng.integers(150, 450, size=2))
    coarse = rng.integers(0, 256, size=(h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)  # smooth: JPEG sizes like photos
    age = int(rng.integers(1, 101))
    path = f"AgeDB/{i}_Synthetic_{age}_m.jpg"
    image.save(os.path.join(root, path), quality=90)
    rows.append(f"{age},{path},{({0: 'val', 1: 'test'}).get(i % 10, 'train')}")
  with open(os.path.join(root, "agedb.csv"), "w") as f:
    f.write("age,path,split\n" + "\n".join(rows) + "\n")
  return root


def stage_costs(data_dir: str, csv: str, n: int) -> dict[str, float]:
  """Milliseconds per image of decode+resize, normalise, crop+flip (one core, first n train images)."""
  import pandas as pd
  from dirjax.data import images
  table = pd.read_csv(os.path.join(data_dir, csv))
  paths = [os.path.join(data_dir, p) for p in table.loc[table["split"] == "train", "path"][:n]]
  rng = np.random.default_rng(0)
  t0 = time.perf_counter()
  raw = [images.load_rgb(p, 224) for p in paths]
  t1 = time.perf_counter()
  normed = [images.normalize(r) for r in raw]
  t2 = time.perf_counter()
  for x in normed:
    images.train_augment({"inputs": x}, rng)
  t3 = time.perf_counter()
  k = 1e3 / len(paths)
  return {"decode+resize": (t1 - t0) * k, "normalise": (t2 - t1) * k, "crop+flip": (t3 - t2) * k}


def bench_loader(bundle, batch_size: int, batches: int, threads: int) -> float:
  return loader_rates(bundle, batch_size, batches, threads)[0]


def loader_rates(bundle, batch_size: int, batches: int, threads: int, workers: int = 0, transform: bool = True):
  """(images per wall second, images per CPU second of this process) of the trainer's train loader of
  `bundle` (`train.Experiment`'s: shuffle, host augmentation or, for prepared splits, uint8 batches with
  their positions and, with `transform`, `bundle.device_transform` jitted as in the train step), after a warm-up."""
  import jax
  from dirjax import sharding
  from dirjax.data import pipeline
  mesh = sharding.make_mesh()
  on_device = bundle.device_transform is not None
  loader = pipeline.Loader(bundle.splits["train"], batch_size=batch_size, mesh=mesh, shuffle=True,
                           augment=bundle.train_augment, num_threads=threads, positions=on_device,
                           num_workers=workers)
  if on_device and transform:
    transform = jax.jit(lambda batch, epoch: bundle.device_transform(batch, 0, epoch))
  else:
    transform = None
  it = itertools.chain.from_iterable(((epoch, b) for b in loader(epoch)) for epoch in itertools.count())

  def next_batch():
    epoch, batch = next(it)
    return batch if transform is None else transform(batch, np.int32(epoch))

  jax.block_until_ready(next_batch())  # warm-up (thread start, first batch, compilation)
  t0, c0 = time.perf_counter(), time.process_time()
  for _ in range(batches):
    jax.block_until_ready(next_batch())
  images = batches * batch_size
  return images / (time.perf_counter() - t0), images / (time.process_time() - c0)


def cached_costs(bundle, n: int) -> dict[str, float]:
  """Milliseconds per image of the prepared path (one core): record read, device normalise + crop + flip."""
  import jax
  source = bundle.splits["train"]
  t0 = time.perf_counter()
  raw = np.stack([source[i % len(source)]["inputs"] for i in range(n)])
  t1 = time.perf_counter()
  transform = jax.jit(lambda b: bundle.device_transform(b, 0, np.int32(0)))
  batch = {"inputs": raw, "position": np.arange(n, dtype=np.int32)}
  jax.block_until_ready(transform(batch))
  t2 = time.perf_counter()
  jax.block_until_ready(transform(batch))
  t3 = time.perf_counter()
  return {"record read": (t1 - t0) * 1e3 / n, "device normalise+crop+flip": (t3 - t2) * 1e3 / n}


def bench_cache(dataset: str, config, batch_size: int, batches: int, rounds: int, bundle, workers: int) -> None:
  """Prepares every split (224² raw uint8 ArrayRecord, `scripts/prepare_data.py --prepare_to`) in a tmp dir,
  then times the trainer's loader on the prepared splits (`data.prepared_dir`) against the on-the-fly one,
  0 reader threads both (and `workers` grain worker processes for the cached one if > 0), interleaved."""
  from dirjax import data
  from scripts import prepare_data
  with tempfile.TemporaryDirectory() as cache:
    t0 = time.perf_counter()
    prepare_data.prepare_age_splits(dataset, config.data_dir, cache, config.img_size)
    n = sum(len(s) for s in bundle.splits.values())
    size = sum(os.path.getsize(os.path.join(cache, f)) for f in os.listdir(cache) if f.endswith(".array_record"))
    print(f"prepare: {n / (time.perf_counter() - t0):.0f} images/s (decode + resize + write), {size / n:.0f} bytes "
          "per image")
    cached_config = config.copy_and_resolve_references()
    cached_config.prepared_dir = cache
    cached = data.get_data(cached_config, seed=0)
    print("per image (1 core), prepared path: "
          + ", ".join(f"{k} {v:.3f} ms" for k, v in cached_costs(cached, 256).items()))
    paths = {"on-the-fly (decode, host float32 augment)": (bundle, 0, True),
             "prepared cache (uint8, device augment)": (cached, 0, True),
             "prepared cache (uint8 batches on the device, no augment)": (cached, 0, False)}
    if workers:
      paths[f"prepared cache, {workers} grain worker processes (uint8 batches, no augment)"] = (cached, workers, False)
    results = {name: [] for name in paths}
    names = list(paths)
    for r in range(rounds):
      for name in names[r % len(names):] + names[:r % len(names)]:
        bench_bundle, bench_workers, bench_transform = paths[name]
        results[name].append(loader_rates(bench_bundle, batch_size, batches, 0, bench_workers, bench_transform))
    for name, rates in results.items():
      wall, cpu = np.array(rates).T
      print(f"{name}: {np.median(wall):.0f} images/s (range {wall.min():.0f}-{wall.max():.0f}), "
            f"{np.median(cpu):.0f} images per CPU-second of the main process")
    print(f"load average (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


def bench_processes(bundle, batch_size: int, batches: int, workers: int) -> float:
  import grain
  ds = (bundle.splits["train"].seed(0).shuffle().repeat().random_map(bundle.train_augment)
        .batch(batch_size).to_iter_dataset().mp_prefetch(grain.MultiprocessingOptions(num_workers=workers)))
  it = iter(ds)
  next(it)
  t0 = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batches * batch_size / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--dataset", default="agedb_dir", choices=["agedb_dir", "imdb_wiki_dir"])
  parser.add_argument("--data_dir", default=None)
  parser.add_argument("--synthetic", type=int, default=0, help="write N random JPEGs to a tmp dir and use them")
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--batches", type=int, default=5)
  parser.add_argument("--workers", default="0,1,2", help="comma-separated thread / process counts")
  parser.add_argument("--processes", action="store_true", help="also time grain worker processes")
  parser.add_argument("--cache", action="store_true",
                      help="also prepare the train split and time the cached uint8 loader next to the on-the-fly one")
  parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the --cache comparison")
  parser.add_argument("--cache_workers", type=int, default=0,
                      help="--cache: also time the cached loader with this many grain worker processes")
  args = parser.parse_args(argv)
  from absl import flags
  if not flags.FLAGS.is_parsed():
    flags.FLAGS(sys.argv[:1])  # grain reads absl flags (worker processes fail otherwise)
  from dirjax import data
  from ml_collections import ConfigDict
  tmp = None
  if args.synthetic:
    tmp = tempfile.TemporaryDirectory()
    args.dataset, args.data_dir = "agedb_dir", write_synthetic(tmp.name, args.synthetic)
  if args.data_dir is None:
    parser.error("--data_dir or --synthetic is required")
  from configs import age_common
  config = age_common.base_config("agedb" if args.dataset == "agedb_dir" else "imdb").data
  config.data_dir = args.data_dir
  bundle = data.get_data(config, seed=0)
  print(f"{args.dataset}: {len(bundle.splits['train'])} train images, batch {args.batch_size}, "
        f"{os.cpu_count()} CPU cores")
  costs = stage_costs(config.data_dir, config.csv, 200)
  print("per image (1 core): " + ", ".join(f"{k} {v:.2f} ms" for k, v in costs.items()))
  for w in (int(v) for v in args.workers.split(",")):
    print(f"Loader, {w} reader thread(s): {bench_loader(bundle, args.batch_size, args.batches, w):.0f} images/s")
  if args.processes:
    for w in (int(v) for v in args.workers.split(",") if int(v) > 0):
      print(f"grain mp_prefetch, {w} worker process(es): "
            f"{bench_processes(bundle, args.batch_size, args.batches, w):.0f} images/s")
  if args.cache:
    bench_cache(args.dataset, config, args.batch_size, args.batches, args.rounds, bundle, args.cache_workers)
  if tmp is not None:
    tmp.cleanup()
  return 0


if __name__ == "__main__":
  sys.exit(main())
