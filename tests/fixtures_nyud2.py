"""A tiny NYUD2-DIR directory in the original formats, generated on the fly (no binaries committed).

Layout as the unpacked NYU v2 zip: `nyu2_train/<scene>/<n>.jpg` (RGB JPEG) + `<n>.png` (8-bit depth,
pixel/255·10 m), `nyu2_test/<n>_colors.png` + `<n>_depth.png` (16-bit, mm), CSVs without header
whose paths start with `data/`, and `nyu2_train_FDS_subset.csv` (a subset of the train rows).
Depth maps are smooth ramps plus a per-image offset so every 0.1 m bucket 7..99 appears in test.
"""

import os

import numpy as np
from PIL import Image

SIZE = (640, 480)  # (W, H) of the NYU v2 frames


def depth_ramp(index: int, lo: float, hi: float, size=SIZE) -> np.ndarray:
  """Depth in metres [H, W]: a diagonal ramp from lo to hi, shifted per image."""
  w, h = size
  yy, xx = np.mgrid[0:h, 0:w]
  t = (xx / (w - 1) * 0.7 + yy / (h - 1) * 0.3 + 0.05 * index) % 1.0
  return (lo + (hi - lo) * t).astype(np.float32)


def image_for(depth: np.ndarray, seed: int) -> np.ndarray:
  """An RGB uint8 image whose red channel follows the depth (texture in green/blue)."""
  rng = np.random.default_rng(seed)
  red = np.clip(depth / depth.max() * 255, 0, 255)
  noise = rng.integers(0, 256, depth.shape + (2,))
  return np.concatenate([red[..., None], noise], axis=-1).astype(np.uint8)


def make_nyud2(root: str, n_train: int = 6, n_test: int = 3, n_fds: int = 2, size=SIZE) -> str:
  """Writes the fixture under `root` and returns its data_dir."""
  os.makedirs(root, exist_ok=True)
  train_rows, test_rows = [], []
  for i in range(n_train):
    scene = f"scene_{i % 2:04d}_out"
    os.makedirs(os.path.join(root, "nyu2_train", scene), exist_ok=True)
    depth = depth_ramp(i, 0.3, 9.9, size)
    code = np.clip(np.round(depth / 10 * 255), 0, 255).astype(np.uint8)
    rel = f"nyu2_train/{scene}/{i}"
    Image.fromarray(image_for(depth, i)).save(os.path.join(root, rel + ".jpg"), quality=95)
    Image.fromarray(code, mode="L").save(os.path.join(root, rel + ".png"))
    train_rows.append(f"data/{rel}.jpg,data/{rel}.png")
  os.makedirs(os.path.join(root, "nyu2_test"), exist_ok=True)
  for i in range(n_test):
    depth = depth_ramp(i, 0.5, 10.4, size)
    mm = np.round(depth * 1000).astype(np.uint16)
    rel = f"nyu2_test/{i:05d}"
    Image.fromarray(image_for(depth, 100 + i)).save(os.path.join(root, rel + "_colors.png"))
    Image.fromarray(mm).save(os.path.join(root, rel + "_depth.png"))  # 16-bit grayscale PNG
    test_rows.append(f"data/{rel}_colors.png,data/{rel}_depth.png")
  for name, rows in (("nyu2_train.csv", train_rows), ("nyu2_test.csv", test_rows),
                     ("nyu2_train_FDS_subset.csv", train_rows[:n_fds])):
    with open(os.path.join(root, name), "w") as f:
      f.write("\n".join(rows) + "\n")
  return root
