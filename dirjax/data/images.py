"""Image decoding and the DIR age-benchmark image transforms (numpy, host side).

Reference pipeline (`agedb-dir/datasets.py`, torchvision on PIL images):
train: Resize((224, 224), bilinear) → RandomCrop(224, padding=16) → RandomHorizontalFlip(0.5)
→ ToTensor ([0, 1]) → Normalize(0.5, 0.5) ⇒ [−1, 1]; val/test: Resize → ToTensor → Normalize.

Here decoding + resize happen in the data source (PIL, so the bilinear resize is PIL's, exactly
what torchvision does on PIL images), normalisation right after it, and the random crop + flip in
`random_crop_flip` on the normalised float32 image. Because the reference pads with black pixels
*before* normalising, our padding value is the normalised black, −1. Every split (train, val,
test, the FDS statistics pass) thus yields the same float32 [−1, 1] images and no model or trainer
needs to know about pixel formats. Cost on this project's 2-core VM (`scripts/bench_input.py`,
AgeDB-like JPEGs, idle machine): decode + resize ≈ 1.4 ms, normalise ≈ 0.4 ms, crop + flip
≈ 0.2 ms per image, i.e. host-side float conversion adds ≈ 25 % to the decode and makes batches 4×
larger than uint8 ones. `dirjax.data.device_augment` is the same transform on uint8 batches on the
device, and `dirjax.data.prepared` stores the resized uint8 images once; the trainer uses both
when `data.prepared_dir` is set (`dirjax.data.age`).
"""

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

try:  # optional extra `fast_decode`: libjpeg-turbo without Pillow's per-image overhead, same pixels
  import simplejpeg
except ImportError:
  simplejpeg = None

PAD_VALUE = -1.0  # normalised black: (0 / 255 - 0.5) / 0.5


def load_rgb(path: str, size: int) -> np.ndarray:
  """Decodes `path` (JPEG/PNG/...) to RGB and resizes it to `size`×`size` (PIL bilinear) → uint8 [H, W, 3].

  A missing, truncated or non-image file raises `ValueError` naming the file. JPEGs are decoded by
  `simplejpeg` when it is installed (exact libjpeg-turbo decode: the same pixels as Pillow's, measured
  on every test fixture; files it cannot read, e.g. CMYK, fall back to Pillow).
  """
  if simplejpeg is not None and path.lower().endswith((".jpg", ".jpeg")):
    try:
      with open(path, "rb") as f:
        return _resized(Image.fromarray(simplejpeg.decode_jpeg(f.read(), colorspace="RGB")), size)
    except (OSError, ValueError):
      pass  # unreadable or unsupported by simplejpeg: Pillow decodes it or names the problem below
  try:
    with Image.open(path) as image:
      return _resized(image.convert("RGB"), size)
  except FileNotFoundError as e:
    raise ValueError(f"image file {path} does not exist") from e
  except (UnidentifiedImageError, OSError, SyntaxError) as e:
    raise ValueError(f"corrupt or unreadable image {path}: {e}") from e


def _resized(image: Image.Image, size: int) -> np.ndarray:
  """`image` resized to `size`×`size` (PIL bilinear, unless it already is) → uint8 [H, W, 3]."""
  if image.size != (size, size):
    image = image.resize((size, size), Image.BILINEAR)
  return np.asarray(image, dtype=np.uint8)


def normalize(image: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] → float32 [−1, 1], with torchvision's arithmetic: (x / 255 − 0.5) / 0.5."""
  if image.dtype != np.uint8:
    raise TypeError(f"normalize expects a uint8 image, got {image.dtype}")
  return (image.astype(np.float32) / np.float32(255.0) - np.float32(0.5)) / np.float32(0.5)


def random_crop_flip(image: np.ndarray, rng: np.random.Generator, padding: int = 16,
                     pad_value: float = PAD_VALUE) -> np.ndarray:
  """RandomCrop(size, padding) with constant padding, then a horizontal flip with probability 0.5.

  Same distribution as torchvision: the crop's top-left corner is uniform on [0, 2·padding] in
  each axis of the padded image. Only the window is written, the padded image is never built.
  """
  if image.ndim != 3:
    raise ValueError(f"expected an [H, W, C] image, got shape {image.shape}")
  top, left = rng.integers(0, 2 * padding + 1, size=2)
  return crop_flip(image, top, left, rng.random() < 0.5, padding, pad_value)


def crop_flip(image: np.ndarray, top: int, left: int, flip: bool, padding: int = 16,
              pad_value: float = PAD_VALUE) -> np.ndarray:
  """The window at (top, left) of `image` padded by `padding` pixels of `pad_value`, mirrored if `flip`."""
  h, w, _ = image.shape
  out = np.full_like(image, pad_value)
  # Window of the padded image [top, top + h) × [left, left + w) in original coordinates.
  dy, dx = top - padding, left - padding
  src_y0, src_y1 = max(dy, 0), min(dy + h, h)
  src_x0, src_x1 = max(dx, 0), min(dx + w, w)
  out[src_y0 - dy:src_y1 - dy, src_x0 - dx:src_x1 - dx] = image[src_y0:src_y1, src_x0:src_x1]
  return out[:, ::-1] if flip else out


def train_augment(example: dict, rng: np.random.Generator) -> dict:
  """`DataBundle.train_augment` of the age benchmarks: crop (16-px padding) + flip of `inputs`."""
  return {**example, "inputs": np.ascontiguousarray(random_crop_flip(example["inputs"], rng))}


def missing_files(root: str, paths: list[str]) -> list[str]:
  """The entries of `paths` (relative to `root`) that are not files; one directory listing per folder.

  Listing each folder once is much faster than one `stat` per file for the 200k IMDB-WIKI images.
  """
  by_dir: dict[str, list[str]] = {}
  for path in paths:
    by_dir.setdefault(os.path.dirname(path), []).append(path)
  missing = []
  for folder, members in by_dir.items():
    try:
      with os.scandir(os.path.join(root, folder)) as entries:
        present = {entry.name for entry in entries if entry.is_file()}
    except (FileNotFoundError, NotADirectoryError):
      present = set()
    missing.extend(p for p in members if os.path.basename(p) not in present)
  return missing
