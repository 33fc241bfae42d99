"""Generated benchmarks (no download): the Balanced-MSE synthetic linear regressions and a
long-tailed image regression set.

* `synthetic_1d` (Ren et al. CVPR 2022, `synthetic_benchmark/main_1d.py` of
  jiawei-ren/BalancedMSE): training labels y ~ N(5, 0.5²) kept in [0, 10] (first
  `num_train` of 2·`num_train` draws), inputs x = (y − ε − b)/k with ε ~ N(0, 1); eval/test labels
  y ~ U(0, 10) with x = (y − b)/k exactly. The oracle regressor is y = kx + b. Label bins of
  `bin_width` serve the BNI prior, re-weighting tables and shot metrics; FDS buckets are integers.
* `synthetic_2d` (`main_2d.py`): training labels y ~ N(0, [[1, .5], [.5, 1]]) (untrimmed),
  x = A(y − ε) with A = 0.01·randn(2, 2) drawn from the seed; eval/test y ~ U([−5, 5]²), x = Ay.
* `synthetic_images`: 32×32 grey images of an anti-aliased disk at a random position with random
  contrast and pixel noise; the target is a size score in [0, 100) (radius 2 + 0.12·y pixels).
  Training targets follow a long-tailed truncated exponential p(y) ∝ exp(−y / tail); val/test
  targets are uniform (balanced, like the DIR benchmarks' val/test sets). Shot metrics with unit
  bins and the DIR thresholds 100/20.

Training elements of the linear benchmarks also carry `density`, the true density of the training
label distribution at the element's label: the reference's Reweight baseline (`ReweightL2` in
`synthetic_benchmark/loss.py`) weights by its inverse (`reweight.method = "true_inverse"` in the
trainer). Every draw is seeded (the reference seeds nothing); the reference fits the GAI prior on
10,000 fresh draws of N(5, 0.5²), we fit it on the training labels (`loss.prior = "gmm"`).
"""

from typing import Any

import numpy as np
from scipy import stats

from dirjax import weighting
from dirjax.data import DataBundle, scalar_evaluator
from dirjax.data.pipeline import ArrayDataset

IMAGE_SIZE = 32


def _rng(seed: int, *stream: int) -> np.random.Generator:
  return np.random.default_rng([seed, *stream])


def _check_sizes(config: Any, names: tuple[str, ...]) -> None:
  for name in names:
    if int(config[name]) < 1:
      raise ValueError(f"data.{name} must be >= 1, got {config[name]}")


def _mse_evaluator(split_labels: dict[str, np.ndarray]):
  """Element-wise test MSE/MAE for d-dimensional targets (the 2-D benchmark's `F.mse_loss`)."""

  def evaluate(split: str, preds: np.ndarray) -> dict:
    if split not in split_labels:
      raise ValueError(f"unknown split {split!r}; have {sorted(split_labels)}")
    err = np.asarray(preds, np.float64).reshape(split_labels[split].shape) - split_labels[split]
    return {"all": {"mse": float(np.mean(err ** 2)), "mae": float(np.mean(np.abs(err))), "count": len(err)}}

  return evaluate


def linear_1d(config: Any, seed: int) -> DataBundle:
  _check_sizes(config, ("num_train", "num_val", "num_test"))
  lo, hi = config.label_range
  mean, std = config.train_mean, config.train_std
  draws = _rng(seed, 0).normal(mean, std, 2 * config.num_train)
  y = draws[(draws >= lo) & (draws <= hi)][:config.num_train]
  if len(y) < config.num_train:
    raise ValueError(f"only {len(y)} of {2 * config.num_train} training draws fell in {config.label_range}")
  x = (y - _rng(seed, 1).normal(0.0, config.noise_std, len(y)) - config.intercept) / config.slope
  density = stats.norm(mean, std).pdf(y)
  splits = {"train": ArrayDataset({"inputs": x[:, None].astype(np.float32), "targets": y[:, None].astype(np.float32),
                                   "density": density.astype(np.float32)})}
  labels = {}
  for stream, split in ((2, "val"), (3, "test")):
    y_eval = _rng(seed, stream).uniform(lo, hi, config[f"num_{split}"])
    x_eval = (y_eval - config.intercept) / config.slope
    splits[split] = ArrayDataset({"inputs": x_eval[:, None].astype(np.float32),
                                  "targets": y_eval[:, None].astype(np.float32)})
    labels[split] = y_eval.astype(np.float32)
  binning = weighting.Binning(int(round((hi - lo) / config.bin_width)), lo, config.bin_width)
  train_labels = y.astype(np.float32)
  return DataBundle(
    splits=splits, train_augment=None, train_labels=train_labels, binning=binning,
    fds_buckets={"bucket_num": int(np.ceil(hi)), "bucket_start": int(np.floor(lo)), "bucketing": "integer"},
    evaluate=scalar_evaluator(labels, train_labels, binning, many_shot_thr=config.many_shot_thr,
                              low_shot_thr=config.low_shot_thr))


def linear_2d(config: Any, seed: int) -> DataBundle:
  _check_sizes(config, ("num_train", "num_val", "num_test"))
  cov = np.asarray(config.train_cov, np.float64)
  lo, hi = config.label_range
  matrix = _rng(seed, 4).standard_normal((2, 2)) * config.matrix_scale
  y = _rng(seed, 0).multivariate_normal(np.zeros(2), cov, config.num_train)
  x = (y - _rng(seed, 1).normal(0.0, config.noise_std, y.shape)) @ matrix.T
  density = stats.multivariate_normal(np.zeros(2), cov).pdf(y)
  splits = {"train": ArrayDataset({"inputs": x.astype(np.float32), "targets": y.astype(np.float32),
                                   "density": density.astype(np.float32)})}
  labels = {}
  for stream, split in ((2, "val"), (3, "test")):
    y_eval = _rng(seed, stream).uniform(lo, hi, (config[f"num_{split}"], 2))
    splits[split] = ArrayDataset({"inputs": (y_eval @ matrix.T).astype(np.float32),
                                  "targets": y_eval.astype(np.float32)})
    labels[split] = y_eval.astype(np.float32)
  axis = weighting.Binning(int(round(hi - lo)), lo, 1.0)
  binning = weighting.JointBinning((axis, axis))
  return DataBundle(splits=splits, train_augment=None, train_labels=y.astype(np.float32), binning=binning,
                    fds_buckets={}, evaluate=_mse_evaluator(labels))  # FDS needs scalar labels


def render_disks(targets: np.ndarray, rng: np.random.Generator, noise_std: float) -> np.ndarray:
  """Images [N, 32, 32, 1] float32 of anti-aliased disks with radius 2 + 0.12·target pixels."""
  n = len(targets)
  radius = 2.0 + 0.12 * targets
  center = rng.uniform(radius[:, None], IMAGE_SIZE - radius[:, None], (n, 2))
  contrast = rng.uniform(0.5, 1.0, n)
  grid = np.arange(IMAGE_SIZE) + 0.5
  dist = np.sqrt((grid[None, :, None] - center[:, 0, None, None]) ** 2
                 + (grid[None, None, :] - center[:, 1, None, None]) ** 2)
  disk = np.clip(radius[:, None, None] - dist + 0.5, 0.0, 1.0) * contrast[:, None, None]
  images = disk + rng.normal(0.0, noise_std, disk.shape)
  return images[..., None].astype(np.float32)


def _flip(element: dict, rng: np.random.Generator) -> dict:
  """Train augmentation: random horizontal and vertical flips (the disk size is invariant)."""
  image = element["inputs"]
  if rng.random() < 0.5:
    image = image[:, ::-1]
  if rng.random() < 0.5:
    image = image[::-1]
  return {**element, "inputs": np.ascontiguousarray(image)}


def images(config: Any, seed: int) -> DataBundle:
  _check_sizes(config, ("num_train", "num_val", "num_test"))
  hi = float(config.max_target)
  # Truncated exponential on [0, hi) by inverse CDF: long-tailed training targets.
  u = _rng(seed, 0).uniform(0.0, 1.0, config.num_train)
  y_train = -config.tail * np.log1p(-u * (1.0 - np.exp(-hi / config.tail)))
  targets = {"train": y_train}
  for stream, split in ((2, "val"), (3, "test")):
    targets[split] = _rng(seed, stream).uniform(0.0, hi, config[f"num_{split}"])
  splits, labels = {}, {}
  for stream, (split, y) in enumerate(targets.items()):
    y = np.minimum(y, np.nextafter(hi, 0)).astype(np.float32)
    splits[split] = ArrayDataset({"inputs": render_disks(y, _rng(seed, 10 + stream), config.noise_std),
                                  "targets": y[:, None]})
    labels[split] = y
  binning = weighting.Binning(int(hi), 0.0, 1.0)
  return DataBundle(
    splits=splits, train_augment=_flip if config.augment else None, train_labels=labels["train"],
    binning=binning, fds_buckets={"bucket_num": int(hi), "bucket_start": 0, "bucketing": "integer"},
    evaluate=scalar_evaluator({k: labels[k] for k in ("val", "test")}, labels["train"], binning,
                              many_shot_thr=config.many_shot_thr, low_shot_thr=config.low_shot_thr))


_BUILDERS = {"synthetic_1d": linear_1d, "synthetic_2d": linear_2d, "synthetic_images": images}


def get_data(config: Any, *, seed: int) -> DataBundle:
  """`DataBundle` of the generated benchmark `config.name` (see the module docstring)."""
  return _BUILDERS[config.name](config, seed)
