"""NYUD2-DIR (Yang et al., ICML 2021): monocular depth with 0.1 m depth buckets (`nyud2-dir/`).

Files under `data_dir` (the DenseDepth NYU v2 subset that the reference's `download_nyud2.py`
unpacks, plus the reference repo's `nyud2-dir/data/` files):

* `nyu2_train.csv` (50,688 rows), `nyu2_test.csv` (654 rows), `nyu2_train_FDS_subset.csv` (600
  rows): no header, `image_path,depth_path`, both starting with `data/`; the first path component
  is dropped and the rest joined with `data_dir` (as the reference's `depthDataset`).
* training depths are 8-bit PNGs (`depth = pixel / 255 · 10` m), test depths 16-bit PNGs in mm
  (`depth = value / 1000`).
* `test_balanced_mask.npy` (uint8 [654, 228, 304]): the evaluated pixels, the same number in every
  0.1 m bucket 7..99. It is missing from the public repo; `prepare` rebuilds it from the test depths
  with `balanced_test_mask` (the `preprocess_nyud2.py` procedure, seeded: not the authors' draw).

Elements. Train: `{"inputs": uint8 [240, 320, 3], "targets": uint8 [240, 320, 1]}` = the image and
8-bit depth code after the deterministic Scale(240); `train_augment` turns them into the model's
`{"inputs": float32 [228, 304, 3] (ImageNet-normalised), "targets": float32 depth [114, 152, 1],
"mask": float32 [114, 152, 1]}` with the reference's paired transforms (`augment_pair`).
`fds_subset` (the FDS statistics split, no augmentation) and `test` elements are model-ready;
test targets are the full-resolution 228×304 depths.

`mask` = 1 where the loss counts a pixel: depth ≥ `config.loss_min_depth` (0 → every pixel, the
DIR recipe with no invalid-pixel mask, docs/deviations.md R14; 0.7 → the Balanced-MSE recipe, which
fits only pixels ≥ 0.7 m in BalancedMSE `nyud2-dir/train.py`, docs/deviations.md R21). The trainer
multiplies it with the padding-row mask.

Weights/priors: `binning` = Binning(100, 0, 0.1) = the reference's `min(int(float32(d)·10), 99)`.
The reference weights and BNI prior come from the hard-coded pixel counts `TRAIN_BUCKET_NUM`
(3.5·10⁹ pixels), not from labels: the bundle carries them as `train_bin_counts` (bins below 7 take
bin 7's value), so the trainer's INV/SQINV/LDS tables equal `bucket_weight_table` exactly.
`train_labels` (for the GAI mixture and DenseWeight) are the 3,644 synthetic labels the reference's
`preprocess_gmm.py` fits: bucket centres repeated count // 10⁶ times, buckets 0–6 given bucket 7's
count.

`evaluate("test", preds [654, 114, 152, 1])` upsamples bilinearly with align_corners=True to
228×304 (the reference's test.py) and returns `metrics.depth_metrics` over the balanced-mask pixels
per shot (hard-coded NYUD2 bucket lists).
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import grain
import numpy as np
import scipy.ndimage
from PIL import Image

from dirjax import metrics, weighting, writers
from dirjax.data import DataBundle

# Per-bucket training pixel counts of the reference (`nyud2-dir/loaddata.py`), 0.1 m buckets.
TRAIN_BUCKET_NUM = (
  0, 0, 0, 0, 0, 0, 0, 25848691, 24732940, 53324326, 69112955, 54455432, 95637682, 71403954, 117244217,
  84813007, 126524456, 84486706, 133130272, 95464874, 146051415, 146133612, 96561379, 138366677, 89680276,
  127689043, 81608990, 119121178, 74360607, 106839384, 97595765, 66718296, 90661239, 53103021, 83340912,
  51365604, 71262770, 42243737, 65860580, 38415940, 53647559, 54038467, 28335524, 41485143, 32106001,
  35936734, 23966211, 32018765, 19297203, 31503743, 21681574, 16363187, 25743420, 12769509, 17675327,
  13147819, 15798560, 9547180, 14933200, 9663019, 12887283, 11803562, 7656609, 11515700, 7756306, 9046228,
  5114894, 8653419, 6859433, 8001904, 6430700, 3305839, 6318461, 3486268, 5621065, 4030498, 3839488, 3220208,
  4483027, 2555777, 4685983, 3145082, 2951048, 2762369, 2367581, 2546089, 2343867, 2481579, 1722140, 3018892,
  2325197, 1952354, 2047038, 1858707, 2052729, 1348558, 2487278, 1314198, 3338550, 1132666)
BUCKET_START = 7
PIXELS_PER_SYNTHETIC_LABEL = 1_000_000  # preprocess_gmm.py: count // 1e6 labels per bucket
BINNING = weighting.Binning(100, 0.0, 0.1)
FDS_BUCKETS = {"bucket_num": 100, "bucket_start": BUCKET_START, "bucketing": "floor10", "edge_pooling": "clamp"}

CSV_FILES = {"train": "nyu2_train.csv", "test": "nyu2_test.csv", "fds_subset": "nyu2_train_FDS_subset.csv"}
MASK_FILE = "test_balanced_mask.npy"
SOURCE = ("nyu2_train.csv / nyu2_test.csv and the images come from the NYU v2 zip that the reference's "
          "nyud2-dir/download_nyud2.py fetches (github.com/YyzHarry/imbalanced-regression); "
          "nyu2_train_FDS_subset.csv is in that repo's nyud2-dir/data/")
SCALE = 240                      # shorter side after Scale
IMAGE_SIZE = (228, 304)          # (H, W) centre crop
DEPTH_SIZE = (114, 152)          # (H, W) training depth / network output
MAX_ROTATION = 5.0               # degrees
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045], np.float32)
PCA_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]],
                      np.float32)
LIGHTING_STD, JITTER = 0.1, 0.4


# ------------------------------------------------------------------------------------- files


def read_csv(csv_path: str, data_dir: str) -> list[tuple[str, str]]:
  """(image, depth) paths of a split CSV: first path component dropped, joined with `data_dir`."""
  if not os.path.isfile(csv_path):
    raise FileNotFoundError(f"missing NYUD2-DIR file {csv_path}; {SOURCE}")
  rows = []
  with open(csv_path, encoding="utf-8") as f:
    for line_no, line in enumerate(f, start=1):
      if not line.strip():
        continue
      cols = line.strip().split(",")
      if len(cols) != 2:
        raise ValueError(f"{csv_path}:{line_no}: expected 'image_path,depth_path', got {line.strip()!r}")
      rows.append(tuple(os.path.join(data_dir, *c.split("/")[1:]) for c in cols))
  if not rows:
    raise ValueError(f"{csv_path} lists no image/depth pairs")
  return rows


def _open(path: str) -> Image.Image:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"missing NYUD2-DIR file {path}; {SOURCE}")
  try:
    image = Image.open(path)
    image.load()
  except (OSError, SyntaxError) as e:
    raise ValueError(f"cannot decode image {path}: {e}") from None
  return image


def _scale(image: Image.Image, resample: int) -> Image.Image:
  """Reference `Scale(240)`: shorter side → 240 (int-truncated longer side)."""
  w, h = image.size
  if min(w, h) == SCALE:
    return image
  size = (SCALE, int(SCALE * h / w)) if w < h else (int(SCALE * w / h), SCALE)
  return image.resize(size, resample)


def load_image(path: str) -> np.ndarray:
  """RGB image after Scale(240) (bilinear), uint8 [240, W, 3]."""
  image = _open(path)
  if image.mode != "RGB":
    raise ValueError(f"{path}: expected an RGB image, got mode {image.mode!r}")
  return np.asarray(_scale(image, Image.BILINEAR))


def load_depth_code(path: str, *, sixteen_bit: bool) -> np.ndarray:
  """Raw depth PNG after Scale(240) (nearest): uint8 codes (train) or uint16 mm (test), [240, W]."""
  image = _open(path)
  ok = image.mode.startswith("I") if sixteen_bit else image.mode == "L"
  if not ok:
    kind = "16-bit (test, millimetres)" if sixteen_bit else "8-bit (train, pixel/255·10 m)"
    raise ValueError(f"{path}: expected a {kind} depth PNG, got PIL mode {image.mode!r}")
  return np.asarray(_scale(image, Image.NEAREST)).astype(np.uint16 if sixteen_bit else np.uint8)


def decode_depth(code: np.ndarray) -> np.ndarray:
  """Depth in metres (float32): uint8 → code / 255 · 10; uint16 → code / 1000."""
  if code.dtype == np.uint8:
    return code.astype(np.float32) / np.float32(255) * np.float32(10)
  if code.dtype == np.uint16:
    return code.astype(np.float32) / np.float32(1000)
  raise TypeError(f"depth codes must be uint8 (train) or uint16 (test), got {code.dtype}")


# ----------------------------------------------------------------------------------- transforms


def _center_crop(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Reference CenterCrop: offsets round((W − w) / 2), round((H − h) / 2); size = (H, W)."""
  h, w = array.shape[:2]
  th, tw = size
  if h < th or w < tw:
    raise ValueError(f"image of {w}×{h} is smaller than the {tw}×{th} crop")
  y, x = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
  return array[y:y + th, x:x + tw]


def _resize_depth_code(code: np.ndarray) -> np.ndarray:
  """Training depth 304×228 → 152×114 with PIL's default filter (BICUBIC on Pillow ≥ 7, what the
  reference's `nyud2-dir/nyu_transform.py` line 130 gets)."""
  return np.asarray(Image.fromarray(code).resize(DEPTH_SIZE[::-1]))


def normalize(image: np.ndarray) -> np.ndarray:
  return (image - MEAN) / STD


def _grayscale(image: np.ndarray) -> np.ndarray:
  return (image @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]


def color_augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """PCA lighting noise (α ~ N(0, 0.1)) then brightness / contrast / saturation jitter (each
  `lerp(x, target, α)`, α ~ U(±0.4)) in random order, on a float [0, 1] image (reference order)."""
  alpha = rng.normal(0.0, LIGHTING_STD, 3).astype(np.float32)
  image = image + PCA_EIGVEC @ (alpha * PCA_EIGVAL)
  for op in rng.permutation(3):
    a = np.float32(rng.uniform(-JITTER, JITTER))
    if op == 0:
      target = np.zeros_like(image)                      # brightness
    elif op == 1:
      target = np.full_like(image, _grayscale(image).mean())  # contrast
    else:
      target = _grayscale(image)                          # saturation
    image = image + a * (target - image)
  return image


def augment_pair(image: np.ndarray, depth_code: np.ndarray, rng: np.random.Generator,
                 color: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """Reference training transforms on a Scale(240)'d pair: flip (p = 0.5) → rotate U(±5°)
  (`scipy.ndimage.rotate`, reshape=False, order 2, corners 0, image AND depth) → centre crop
  304×228 → depth resized to 152×114 → (lighting + colour jitter) → normalise.
  Returns (float32 image [228, 304, 3], float32 depth m [114, 152, 1])."""
  if rng.random() < 0.5:
    image, depth_code = image[:, ::-1], depth_code[:, ::-1]
  angle = rng.uniform(-MAX_ROTATION, MAX_ROTATION)
  image = scipy.ndimage.rotate(image, angle, reshape=False, order=2)
  depth_code = scipy.ndimage.rotate(depth_code, angle, reshape=False, order=2)
  image = _center_crop(image, IMAGE_SIZE).astype(np.float32) / np.float32(255)
  depth = decode_depth(_resize_depth_code(_center_crop(depth_code, IMAGE_SIZE)))
  if color:
    image = color_augment(image, rng)
  return normalize(image).astype(np.float32), depth[..., None]


def _loss_mask(depth: np.ndarray, min_depth: float) -> np.ndarray:
  return (depth >= np.float32(min_depth)).astype(np.float32)


# ---------------------------------------------------------------------------------- test mask


def balanced_test_mask(test_depths: np.ndarray, seed: int = 0) -> np.ndarray:
  """Rebuilds `test_balanced_mask.npy` as `preprocess_nyud2.py` did (uint8, same shape).

  m = smallest non-zero count of `np.histogram(depths, 100, range=(0, 10))`; then in every bucket
  b = min(int(float32(d)·10), 99), b = 7..99, m pixels are drawn without replacement (seeded here;
  the authors' draw was unseeded, so this is not their mask, only the same procedure).
  """
  depths = np.asarray(test_depths, np.float32)
  flat = depths.ravel()
  hist, _ = np.histogram(flat, bins=100, range=(0.0, 10.0))
  if not np.any(hist):
    raise ValueError("test depths have no pixel in [0, 10] m")
  m = int(hist[hist > 0].min())
  buckets = BINNING.index(flat)
  order = np.argsort(buckets, kind="stable")
  starts = np.searchsorted(buckets[order], np.arange(101))
  rng = np.random.default_rng(seed)
  mask = np.zeros(flat.shape, np.uint8)
  for b in range(BUCKET_START, 100):
    members = order[starts[b]:starts[b + 1]]
    if members.size < m:
      raise ValueError(f"depth bucket {b} has {members.size} test pixels, fewer than the {m} to draw")
    mask[rng.choice(members, size=m, replace=False)] = 1
  return mask.reshape(depths.shape)


# ---------------------------------------------------------------------------------- evaluation


def upsample_align_corners(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Bilinear resize of [N, h, w] to [N, H, W] with align_corners=True (PyTorch semantics)."""
  n, h, w = x.shape
  out_h, out_w = size

  def axis(out: int, inp: int):
    pos = np.arange(out) * ((inp - 1) / (out - 1) if out > 1 else 0.0)
    lo = np.minimum(np.floor(pos).astype(np.int64), inp - 1)
    hi = np.minimum(lo + 1, inp - 1)
    return lo, hi, (pos - lo).astype(np.float32)

  (y0, y1, fy), (x0, x1, fx) = axis(out_h, h), axis(out_w, w)
  top = x[:, y0][:, :, x0] * (1 - fx) + x[:, y0][:, :, x1] * fx
  bottom = x[:, y1][:, :, x0] * (1 - fx) + x[:, y1][:, :, x1] * fx
  return top * (1 - fy)[:, None] + bottom * fy[:, None]


# ---------------------------------------------------------------------------------- preparing


def _check_dir(data_dir: str) -> None:
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(f"NYUD2-DIR data_dir {data_dir!r} does not exist; {SOURCE}")
  missing = [os.path.join(data_dir, f) for f in CSV_FILES.values() if not os.path.isfile(os.path.join(data_dir, f))]
  if missing:
    raise FileNotFoundError(f"missing NYUD2-DIR file(s): {', '.join(missing)}; {SOURCE}")


def load_test_depths(data_dir: str) -> np.ndarray:
  """Centre-cropped 228×304 test depths in metres, float32 [N, 228, 304]."""
  rows = read_csv(os.path.join(data_dir, CSV_FILES["test"]), data_dir)
  return np.stack([_center_crop(decode_depth(load_depth_code(d, sixteen_bit=True)), IMAGE_SIZE) for _, d in rows])


def prepare(data_dir: str, *, seed: int = 0) -> str:
  """Checks every NYUD2-DIR file (errors list all missing ones) and writes `test_balanced_mask.npy`
  when absent (rebuilt with `balanced_test_mask`, seeded). Returns the mask path."""
  _check_dir(data_dir)
  missing = []
  for name in CSV_FILES.values():
    for pair in read_csv(os.path.join(data_dir, name), data_dir):
      missing += [p for p in pair if not os.path.isfile(p)]
  if missing:
    shown = ", ".join(sorted(set(missing))[:10])
    raise FileNotFoundError(f"{len(set(missing))} NYUD2-DIR image/depth file(s) missing, e.g. {shown}; {SOURCE}")
  path = os.path.join(data_dir, MASK_FILE)
  if not os.path.isfile(path):
    logging.warning("%s not found: rebuilding it (seed %d; not the authors' random draw)", path, seed)
    writers.save_npy(path, balanced_test_mask(load_test_depths(data_dir), seed=seed))
  return path


# ---------------------------------------------------------------------------------- the bundle


def synthetic_train_labels() -> np.ndarray:
  """The GMM labels of BalancedMSE's `nyud2-dir/preprocess_gmm.py` (fixed as docs/deviations.md row 5):
  bucket centres (0.05 … 9.95) repeated count // 10⁶ times, buckets 0–6 given bucket 7's count. float32 [3644]."""
  counts = np.asarray(TRAIN_BUCKET_NUM, np.int64)
  counts[:BUCKET_START] = counts[BUCKET_START]
  return np.repeat(BINNING.centers(), counts // PIXELS_PER_SYNTHETIC_LABEL).astype(np.float32)


def bucket_weight_table(reweight: str, lds: bool = False, kernel: str = "gaussian", ks: int = 5,
                        sigma: float = 2.0) -> np.ndarray | None:
  """The reference's exact per-bucket weights (`_get_bucket_weights`) from `TRAIN_BUCKET_NUM`:
  buckets < 7 take bucket 7's value, LDS with scipy 'reflect' boundaries, no clipping."""
  return weighting.weight_table_from_counts(
    np.asarray(TRAIN_BUCKET_NUM, np.int64), reweight, lds=lds, lds_kernel=kernel, lds_ks=ks, lds_sigma=sigma,
    lds_mode="reflect", bucket_start=BUCKET_START)


class _Pairs(grain.MapDataset):
  """Random-access NYUD2 split: decodes row `i` of a CSV with `load(image_path, depth_path)`."""

  def __init__(self, rows: list[tuple[str, str]], load):
    super().__init__()
    self._rows, self._load = rows, load

  def __len__(self) -> int:
    return len(self._rows)

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    return self._load(*self._rows[index % len(self._rows)])

  def __str__(self) -> str:
    return f"NYUD2Pairs(len={len(self._rows)})"


def _load_train(image_path: str, depth_path: str) -> dict:
  image, code = load_image(image_path), load_depth_code(depth_path, sixteen_bit=False)
  if image.shape[:2] != code.shape:
    raise ValueError(f"{image_path} ({image.shape[:2]}) and {depth_path} ({code.shape}) differ in size")
  return {"inputs": image, "targets": code[..., None]}


def _load_fds(image_path: str, depth_path: str, min_depth: float) -> dict:
  image = _center_crop(load_image(image_path), IMAGE_SIZE).astype(np.float32) / np.float32(255)
  code = load_depth_code(depth_path, sixteen_bit=False)
  depth = decode_depth(_resize_depth_code(_center_crop(code, IMAGE_SIZE)))[..., None]
  return {"inputs": normalize(image), "targets": depth, "mask": _loss_mask(depth, min_depth)}


def _load_test(image_path: str, depth_path: str) -> dict:
  image = _center_crop(load_image(image_path), IMAGE_SIZE).astype(np.float32) / np.float32(255)
  depth = _center_crop(decode_depth(load_depth_code(depth_path, sixteen_bit=True)), IMAGE_SIZE)
  return {"inputs": normalize(image), "targets": depth[..., None]}


def get_data(config: Any, *, seed: int) -> DataBundle:
  """NYUD2-DIR `DataBundle`; config keys: data_dir, loss_min_depth, color_augment.

  Splits "train", "fds_subset", "test" (no validation split: the reference selects on test, docs/deviations.md R14).
  """
  data_dir = config.data_dir
  mask_path = prepare(data_dir, seed=seed)
  rows = {split: read_csv(os.path.join(data_dir, name), data_dir) for split, name in CSV_FILES.items()}
  test_mask = writers.load_npy(mask_path, fix="delete it; the next run rebuilds the balanced test mask")
  expected = (len(rows["test"]), *IMAGE_SIZE)
  if test_mask.shape != expected:
    raise ValueError(f"{mask_path} has shape {test_mask.shape}, expected {expected}; delete it to rebuild it")
  min_depth, color = config.loss_min_depth, config.color_augment

  def train_augment(example: dict, rng: np.random.Generator) -> dict:
    image, depth = augment_pair(example["inputs"], example["targets"][..., 0], rng, color=color)
    return {"inputs": image, "targets": depth, "mask": _loss_mask(depth, min_depth)}

  @functools.cache
  def test_depths() -> np.ndarray:
    return load_test_depths(data_dir)

  def evaluate(split: str, preds: np.ndarray) -> dict:
    if split != "test":
      raise ValueError(f"NYUD2-DIR evaluates the 'test' split only, got {split!r}")
    preds = np.asarray(preds, np.float32)
    if preds.shape != (len(rows["test"]), *DEPTH_SIZE, 1):
      raise ValueError(f"expected test predictions [{len(rows['test'])}, {DEPTH_SIZE[0]}, {DEPTH_SIZE[1]}, 1], "
                       f"got {preds.shape}")
    full = upsample_align_corners(preds[..., 0], IMAGE_SIZE)
    return metrics.depth_metrics(full, test_depths(), mask=test_mask)

  return DataBundle(
    splits={"train": _Pairs(rows["train"], _load_train),
            "fds_subset": _Pairs(rows["fds_subset"], functools.partial(_load_fds, min_depth=min_depth)),
            "test": _Pairs(rows["test"], _load_test)},
    train_augment=train_augment,
    train_labels=synthetic_train_labels(),
    binning=BINNING,
    fds_buckets=dict(FDS_BUCKETS),
    evaluate=evaluate,
    fds_split="fds_subset",
    train_bin_counts=np.asarray(TRAIN_BUCKET_NUM, np.int64),
    first_counted_bin=BUCKET_START,
  )
