"""`data.name = "tabular"`: your own table (CSV / TSV / Parquet / numpy .npz) without writing a module.

Config keys (`config.data`):
  path          the file; .csv, .tsv, .parquet or .npz (an .npz's arrays are its columns; a 2-D
                array contributes all its columns under its name)
  target        the label column (one scalar target)
  features      the input columns; empty = every other numeric column (minus `split_column`)
  split_column  optional column with values train / val / test (your own splits); empty = carve
                balanced val / test sets: up to `per_bin` rows of every label bin each (`own.py`)
  per_bin, split_seed   the carving (DIR age benchmarks: up to 30 per age, fixed seed)
  bin_width, bin_start  label bins (re-weighting, BNI prior, shot groups, carving); `bin_start`
                None = the smallest label rounded down to a multiple of `bin_width`
  standardize   z-score every feature with the training rows' mean and std
  many_shot_thr, low_shot_thr   shot groups: training rows per bin (> many, < few; DIR: 100 / 20)

Elements are `{"inputs": float32 [F], "targets": float32 [1]}`; the model's input width
(`model.in_features` of the MLP) must be F, the number of feature columns (the log line "data: ...
features" names them).
"""

import os
from typing import Any

import numpy as np
import pandas as pd
from absl import logging

from dirjax.data import DataBundle, own
from dirjax.data.pipeline import ArrayDataset


def read_columns(path: str) -> dict[str, np.ndarray]:
  """Column name → array of a CSV / TSV / Parquet / .npz file; a missing file or unknown suffix fails."""
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"data.path {path!r} does not exist; set --config.data.path to your table "
                            "(.csv, .tsv, .parquet or .npz)")
  suffix = os.path.splitext(path)[1].lower()
  if suffix == ".npz":
    with np.load(path, allow_pickle=False) as arrays:
      return {name: arrays[name] for name in arrays.files}
  if suffix in (".csv", ".tsv", ".txt"):
    frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
  elif suffix == ".parquet":
    try:
      frame = pd.read_parquet(path)
    except ImportError as e:
      raise ImportError(f"reading {path} needs a Parquet engine: pip install pyarrow ({e})") from e
  else:
    raise ValueError(f"data.path {path!r}: unknown table format {suffix!r}; use .csv, .tsv, .parquet or .npz")
  return {str(name): frame[name].to_numpy() for name in frame.columns}


def _feature_names(columns: dict[str, np.ndarray], config: Any, path: str) -> list[str]:
  listed = list(config.features)
  wanted = [config.target] + listed + ([config.split_column] if config.split_column else [])
  missing = [name for name in wanted if name not in columns]
  if missing:
    raise ValueError(f"{path} has no column(s) {missing}; its columns are {sorted(columns)}")
  if listed:
    return listed
  others = [n for n in columns if n not in (config.target, config.split_column)]
  numeric = [n for n in others if np.issubdtype(columns[n].dtype, np.number) or columns[n].dtype == bool]
  skipped = sorted(set(others) - set(numeric))
  if skipped:
    logging.warning("data: non-numeric column(s) %s are not used as features (encode them as numbers and list "
                    "them in data.features to use them)", skipped)
  return numeric


def _feature_matrix(columns: dict[str, np.ndarray], names: list[str], path: str) -> np.ndarray:
  parts = []
  for name in names:
    try:
      values = np.asarray(columns[name], np.float64)
    except (TypeError, ValueError) as e:
      raise ValueError(f"{path}: feature column {name!r} is not numeric ({e}); encode it as numbers") from e
    values = values.reshape(len(values), -1)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
      raise ValueError(f"{path}: feature column {name!r} has {int(bad.sum())} missing or non-finite value(s), "
                       f"first at row {int(np.flatnonzero(bad)[0])}; drop or fill those rows")
    parts.append(values)
  if not parts:
    raise ValueError(f"{path}: no feature columns; list them in data.features")
  return np.concatenate(parts, axis=1)


DEFAULTS = {"features": (), "split_column": "", "per_bin": 30, "split_seed": 0, "bin_width": 1.0, "bin_start": None,
            "standardize": True, "many_shot_thr": 100, "low_shot_thr": 20}
REQUIRED = ("path", "target")


def get_data(config: Any, *, seed: int) -> DataBundle:
  """DataBundle of a table (keys in the module docstring); `seed` is unused: the carving has its own
  `split_seed`, so runs with different seeds evaluate on the same val / test rows."""
  del seed
  config = own.options(config, "tabular", REQUIRED, DEFAULTS)
  columns = read_columns(config.path)
  names = _feature_names(columns, config, config.path)
  features = _feature_matrix(columns, names, config.path)
  labels = own.check_labels(columns[config.target], config.path, config.target)
  split_values = columns[config.split_column] if config.split_column else None
  splits, binning = own.assign_splits(labels, config, split_values)
  train = splits == "train"
  if config.standardize:
    mean, std = features[train].mean(0), features[train].std(0)
    features = (features - mean) / np.where(std > 0, std, 1.0)
  logging.info("data: %d features %s, target %r", features.shape[1], names, config.target)
  arrays = {s: ArrayDataset({"inputs": features[splits == s].astype(np.float32),
                             "targets": labels[splits == s][:, None]}) for s in own.SPLITS}
  return DataBundle(splits=arrays, train_augment=None, train_labels=labels[train], binning=binning,
                    fds_buckets=own.fds_buckets(binning), evaluate=own.evaluator(labels, splits, binning, config))

