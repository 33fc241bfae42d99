"""Tiny age datasets in the original on-disk formats (CSV `age,path,split` + JPEG files), built in tmp dirs."""

import os

import numpy as np
from ml_collections import ConfigDict
from PIL import Image

# Small but imbalanced: (age, train count) plus 2 val and 2 test faces for every age listed.
DEFAULT_TRAIN_COUNTS = {3: 1, 10: 2, 25: 6, 30: 8, 41: 5, 70: 2, 95: 1}


def write_jpeg(path: str, rng: np.random.Generator, size: tuple[int, int] = (20, 16)) -> np.ndarray:
  """Writes a random RGB JPEG of `size` (w, h) and returns its pixels as decoded back from disk."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
  Image.fromarray(pixels).save(path, quality=90)
  return np.asarray(Image.open(path).convert("RGB"))


def make_agedb(root: str, train_counts: dict[int, int] | None = None, eval_per_age: int = 2,
               seed: int = 0, csv_name: str = "agedb.csv") -> str:
  """AgeDB-style folder: `<root>/AgeDB/<id>_<Name>_<age>_<g>.jpg` + `<root>/agedb.csv`; returns root."""
  rng = np.random.default_rng(seed)
  rows = []
  for age, n_train in (train_counts or DEFAULT_TRAIN_COUNTS).items():
    for split, n in (("train", n_train), ("val", eval_per_age), ("test", eval_per_age)):
      for _ in range(n):
        path = f"AgeDB/{len(rows)}_Person{len(rows)}_{age}_{'mf'[len(rows) % 2]}.jpg"
        size = (int(rng.integers(12, 40)), int(rng.integers(12, 40)))
        write_jpeg(os.path.join(root, path), rng, size)
        rows.append((age, path, split))
  rng.shuffle(rows)
  with open(os.path.join(root, csv_name), "w") as f:
    f.write("age,path,split\n")
    f.writelines(f"{a},{p},{s}\n" for a, p, s in rows)
  return root


def data_config(data_dir: str, name: str = "agedb_dir", img_size: int = 32) -> ConfigDict:
  """The `config.data` section of the age configs, pointed at a fixture."""
  return ConfigDict({
    "name": name, "data_dir": data_dir, "csv": "agedb.csv" if name == "agedb_dir" else "imdb_wiki.csv",
    "img_size": img_size, "max_target": 121, "label_range": (0.0, 200.0),
    "bucket_num": 100, "bucket_start": 3 if name == "agedb_dir" else 0,
    "many_shot_thr": 100, "low_shot_thr": 20, "prepared_dir": "",
    "resample": {"method": "", "k": 5, "pert": 0.02, "threshold": 0.5, "thumbnail": 16},
  })
