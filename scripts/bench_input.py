"""Input-pipeline throughput of the age benchmarks: images/s of decoded, resized, augmented batches.

  python -m scripts.bench_input --dataset=agedb_dir --data_dir=/data/agedb
  python -m scripts.bench_input --synthetic=2000          # random AgeDB-like JPEGs in a tmp dir

Times the trainer's train loader (`dirjax.data.pipeline.Loader`: shuffle → decode + resize +
normalise → crop/flip → batch → device) with 0/1/2/... reader threads, then the same element chain
through grain worker processes (`mp_prefetch`), and the per-image cost of each stage on one core.
`--cache` also prepares the train split (`dirjax.data.prepared`) and times the cached loader (uint8
batches, augmentation by `dirjax.data.device_augment`) next to the on-the-fly one, interleaved:

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
  return loader_rates(bundle.splits["train"], bundle.train_augment, None, batch_size, batches, threads)[0]


def loader_rates(dataset, host_augment, device_augment, batch_size: int, batches: int, threads: int):
  """(images per wall second, images per CPU second of this process) of the trainer's Loader over
  `dataset`, with the host augmentation or (uint8 batches) `device_augment(batch, epoch, positions)`."""
  import jax
  import jax.numpy as jnp
  from dirjax import sharding
  from dirjax.data import pipeline
  mesh = sharding.make_mesh()
  loader = pipeline.Loader(dataset, batch_size=batch_size, mesh=mesh, shuffle=True,
                           augment=host_augment, num_threads=threads)
  it = itertools.chain.from_iterable(loader(epoch) for epoch in itertools.count())
  positions = jnp.arange(batch_size)

  def next_batch():
    batch = next(it)
    return batch if device_augment is None else device_augment(batch["inputs"], 0, 0, positions)

  jax.block_until_ready(next_batch())  # warm-up (thread start, first batch, compilation)
  t0, c0 = time.perf_counter(), time.process_time()
  for _ in range(batches):
    jax.block_until_ready(next_batch())
  images = batches * batch_size
  return images / (time.perf_counter() - t0), images / (time.process_time() - c0)


def bench_cache(data_dir: str, csv: str, batch_size: int, batches: int, rounds: int, bundle) -> None:
  """Prepares the train split (224², raw uint8 ArrayRecord) in a tmp dir, then times the cached
  loader (uint8 batches, crop + flip + normalise by `device_augment`) against the on-the-fly loader
  (0 reader threads both), interleaved over `rounds`."""
  import grain
  import pandas as pd
  from dirjax.data import device_augment, prepared
  table = pd.read_csv(os.path.join(data_dir, csv))
  train = table[table["split"] == "train"]
  with tempfile.TemporaryDirectory() as cache:
    t0 = time.perf_counter()
    shards = prepared.prepare_split(data_dir, train["path"].tolist(), 224, os.path.join(cache, "train"),
                                    progress=lambda m: None)
    print(f"prepare: {len(train) / (time.perf_counter() - t0):.0f} images/s (decode + resize + write), "
          f"{sum(os.path.getsize(s) for s in shards) / len(train):.0f} bytes per image")
    source = grain.MapDataset.source(prepared.PreparedSource(shards, train["age"].to_numpy(), 224))
    paths = {"on-the-fly (decode, host float32 augment)": (bundle.splits["train"], bundle.train_augment, None),
             "prepared cache (uint8, device augment)": (source, None, device_augment.augment)}
    results = {name: [] for name in paths}
    names = list(paths)
    for r in range(rounds):
      for name in names[r % 2:] + names[:r % 2]:
        results[name].append(loader_rates(*paths[name], batch_size, batches, 0))
    for name, rates in results.items():
      wall, cpu = np.array(rates).T
      print(f"{name}: {np.median(wall):.0f} images/s (range {wall.min():.0f}-{wall.max():.0f}), "
            f"{np.median(cpu):.0f} images per CPU-second")


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
    bench_cache(config.data_dir, config.csv, args.batch_size, args.batches, args.rounds, bundle)
  if tmp is not None:
    tmp.cleanup()
  return 0


if __name__ == "__main__":
  sys.exit(main())
