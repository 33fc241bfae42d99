"""What the own-data sources (`tabular`, `image_folder`) share: label bins of a chosen width, the
DIR-style balanced val/test carving or the user's own split column, and the `DataBundle` parts
that follow from the labels (FDS buckets, the standard evaluator).

Balanced carving follows `make_balanced_testset` of the DIR age benchmarks
(YyzHarry/imbalanced-regression, `agedb-dir/data/preprocess_agedb.py`): per label bin, its rows are
shuffled, c = min(n // 3, per_bin) go to val and the next c to test, the rest to train, so val and
test hold up to `per_bin` rows of every bin (balanced) while the training set keeps the long tail.
Deviation: the rows are shuffled once with numpy (`default_rng(split_seed)`) instead of Python's
`random` per age, and bins of any width replace the integer ages 0..120.
"""

import difflib
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from dirjax import weighting
from dirjax.data import scalar_evaluator

SPLITS = ("train", "val", "test")


def options(config: Any, source: str, required: tuple[str, ...], defaults: dict) -> ml_collections.ConfigDict:
  """`config.data` with the source's defaults filled in; a missing required key or an unknown key
  (a typo) fails naming the closest valid one."""
  given = dict(config)
  valid = ("name", *required, *defaults)
  for key in given:
    if key not in valid:
      close = difflib.get_close_matches(key, valid, n=1)
      hint = f"did you mean {close[0]!r}? " if close else ""
      raise ValueError(f"data.{key} is not an option of data.name={source!r}; {hint}valid: {', '.join(valid)}")
  missing = [key for key in required if not given.get(key)]
  if missing:
    raise ValueError(f"data.name={source!r} needs data.{' and data.'.join(missing)} (e.g. "
                     f"--config.data.{missing[0]}=...)")
  return ml_collections.ConfigDict({**defaults, **given})


def balanced_carve(bins: np.ndarray, per_bin: int, seed: int) -> np.ndarray:
  """Split name per row ("train" / "val" / "test"): up to `per_bin` rows of each bin to val and as
  many to test, c = min(n_bin // 3, per_bin), from one seeded shuffle of the rows."""
  if int(per_bin) < 1:
    raise ValueError(f"data.per_bin must be >= 1 (rows of each label bin in val and in test), got {per_bin}")
  bins = np.asarray(bins, np.int64)
  order = np.random.default_rng(seed).permutation(len(bins))
  order = order[np.argsort(bins[order], kind="stable")]  # grouped by bin, shuffled within
  sorted_bins = bins[order]
  counts = np.bincount(bins)
  first = np.concatenate([[0], np.cumsum(counts)[:-1]])
  rank = np.arange(len(bins)) - first[sorted_bins]
  take = np.minimum(counts // 3, per_bin)[sorted_bins]
  names = np.where(rank < take, "val", np.where(rank < 2 * take, "test", "train"))
  out = np.empty(len(bins), dtype=object)
  out[order] = names
  return out


def given_splits(values: np.ndarray, column: str) -> np.ndarray:
  """The user's split column as split names; other values fail naming them."""
  names = np.asarray(values).astype(str)
  unknown = sorted(set(names) - set(SPLITS))
  if unknown:
    raise ValueError(f"split column {column!r} has value(s) {unknown[:5]}; expected train, val, test")
  empty = [s for s in SPLITS if not (names == s).any()]
  if empty:
    raise ValueError(f"split column {column!r} has no {'/'.join(empty)} rows")
  return names.astype(object)


def check_labels(labels: np.ndarray, source: str, column: str) -> np.ndarray:
  """Float32 labels [N]; NaN / inf / non-numbers fail naming the first bad row."""
  values = np.asarray(labels)
  try:
    values = values.astype(np.float64)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{source}: target column {column!r} is not numeric ({e})") from e
  bad = ~np.isfinite(values)
  if bad.any():
    raise ValueError(f"{source}: target column {column!r} has {int(bad.sum())} missing or non-finite value(s), "
                     f"first at row {int(np.flatnonzero(bad)[0])}; drop or fill those rows")
  return values.astype(np.float32)


def assign_splits(labels: np.ndarray, config: Any,
                  split_values: np.ndarray | None) -> tuple[np.ndarray, weighting.Binning]:
  """(split name per row, label bins): bins of `data.bin_width` over all labels (from `data.bin_start`,
  default the smallest label rounded down); splits from the user's column or `balanced_carve`."""
  binning = weighting.label_binning(labels, config.bin_width, config.bin_start)
  if split_values is not None:
    splits = given_splits(split_values, config.split_column)
  else:
    splits = balanced_carve(binning.index(labels), config.per_bin, config.split_seed)
  counts = {s: int((splits == s).sum()) for s in SPLITS}
  if min(counts.values()) == 0:
    raise ValueError(f"the split {counts} leaves a split empty: no label bin of width {config.bin_width} holds "
                     "3 rows; use a wider data.bin_width or give a data.split_column")
  logging.info("data: %d label bins of width %g from %g; rows per split %s", binning.num_bins, binning.bin_width,
               binning.start, counts)
  return splits, binning


def fds_buckets(binning: weighting.Binning) -> dict:
  """FDS buckets over the label range: 1 label unit wide (`"integer"`), 0.1 wide (`"floor10"`) when
  the bins are narrower than 1."""
  scale = 10 if binning.bin_width < 1 else 1
  first = int(np.floor(binning.start * scale))
  last = int(np.floor((binning.start + binning.num_bins * binning.bin_width) * scale))
  return {"bucket_num": last + 1, "bucket_start": first, "bucketing": "floor10" if scale == 10 else "integer",
          "edge_pooling": "clamp"}


def evaluator(labels: np.ndarray, splits: np.ndarray, binning: weighting.Binning, config: Any):
  """`scalar_evaluator` (shot metrics by training count per bin, balanced metrics) for these splits."""
  split_labels = {s: labels[splits == s] for s in SPLITS}
  return scalar_evaluator(split_labels, split_labels["train"], binning, many_shot_thr=config.many_shot_thr,
                          low_shot_thr=config.low_shot_thr)
