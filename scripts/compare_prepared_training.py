"""Training from a prepared split against training from the original images: same metrics within seed noise?

  python -m scripts.compare_prepared_training --seeds=0,1,2 --epochs=4 --images=400

Writes generated AgeDB-style JPEGs whose brightness follows the age (so the tiny ResNet learns something),
an imbalanced age distribution and an `agedb.csv` (80 / 10 / 10 % train / val / test), prepares the splits
(`dirjax.data.prepared`), then trains the AgeDB-DIR smoke recipe (ResNet-18 width 8, one block per stage,
32² images) from the images (host crop/flip) and from the cache (device crop/flip) for each seed and prints
the test MAE (all / many > 20 / medium / few < 5 training faces) of the best-on-val checkpoint per path: mean and spread over seeds,
and the per-seed difference between the paths.
"""

import argparse
import os
import tempfile

import numpy as np


def write_fixture(root: str, n: int, seed: int = 0) -> str:
  from PIL import Image
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(root, "AgeDB"), exist_ok=True)
  ages = (5 + np.round(rng.gamma(2.0, 6.0, size=n))).astype(int)  # imbalanced: many at 10-20, a long tail
  rows = []
  for i, age in enumerate(ages):
    w, h = (int(v) for v in rng.integers(40, 90, size=2))
    pixels = np.clip(age * 2.3 + rng.normal(0, 25, size=(h, w, 3)), 0, 255).astype(np.uint8)
    path = f"AgeDB/{i}_Generated_{age}_m.jpg"
    Image.fromarray(pixels).save(os.path.join(root, path), quality=90)
    rows.append(f"{age},{path},{({0: 'val', 1: 'test'}).get(i % 10, 'train')}")
  with open(os.path.join(root, "agedb.csv"), "w") as f:
    f.write("age,path,split\n" + "\n".join(rows) + "\n")
  return root


def run(root: str, prepared_dir: str, seed: int, epochs: int, workdir: str) -> dict:
  from configs import agedb_vanilla
  from dirjax import train
  c = agedb_vanilla.get_config("smoke")
  c.data.data_dir, c.data.prepared_dir, c.seed, c.num_epochs = root, prepared_dir, seed, epochs
  c.batch_size = c.eval_batch_size = 32
  c.model.width = 8
  c.log_every_steps = 1000
  c.data.many_shot_thr, c.data.low_shot_thr = 20, 5  # shot groups of a few hundred training faces
  result = train.train_and_evaluate(c, workdir)
  return {shot: result["test"][shot]["mae"] or float("nan") for shot in ("all", "many", "medium", "few")}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--epochs", type=int, default=4)
  parser.add_argument("--images", type=int, default=400)
  args = parser.parse_args()
  from scripts import prepare_data
  with tempfile.TemporaryDirectory() as tmp:
    root = write_fixture(os.path.join(tmp, "data"), args.images)
    prepare_data.prepare_age_splits("agedb_dir", root, os.path.join(tmp, "cache"), 32)
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {"images": [], "cache": []}
    for seed in seeds:
      for path, prepared_dir in (("images", ""), ("cache", os.path.join(tmp, "cache"))):
        results[path].append(run(root, prepared_dir, seed, args.epochs, os.path.join(tmp, f"{path}{seed}")))
        print(f"seed {seed} {path}: " + ", ".join(f"{k} {v:.3f}" for k, v in results[path][-1].items()), flush=True)
  print(f"\ntest MAE of the best-on-val checkpoint, {len(seeds)} seeds, {args.epochs} epochs, {args.images} images")
  for shot in ("all", "many", "medium", "few"):
    line = []
    for path in ("images", "cache"):
      values = np.array([r[shot] for r in results[path]])
      line.append(f"{path} {values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0:.3f}")
    diff = np.array([c[shot] - i[shot] for c, i in zip(results["cache"], results["images"])])
    print(f"{shot:>6}: " + " | ".join(line) + f" | cache − images per seed {np.round(diff, 3).tolist()}")


if __name__ == "__main__":
  main()
