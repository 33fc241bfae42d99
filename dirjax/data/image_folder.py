"""`data.name = "image_folder"`: your own images and a CSV of their paths and labels, without writing a module.

Config keys (`config.data`):
  csv           the CSV: one row per image, a column of paths relative to `root` and a label column
  root          the image folder (default: the CSV's folder)
  path_column   the column of image paths (default "path")
  target        the label column
  split_column, per_bin, split_seed, bin_width, bin_start, many_shot_thr, low_shot_thr
                as for `tabular` (your splits, or balanced val / test carved per label bin)
  img_size      images are decoded to RGB and resized to img_size² (PIL bilinear), values in [−1, 1]
  augment       training crop (img_size/14 padding, as 16 px at 224) + horizontal flip, as the DIR
                age benchmarks

Elements are `{"inputs": float32 [img_size, img_size, 3], "targets": float32 [1]}`, decoded on read
by the age benchmarks' source (`age.AgeImageSource`), so any model for the age configs fits
(e.g. `resnet18`). Every listed image is checked to exist before training starts.
"""

import functools
import os
from typing import Any

import grain
import pandas as pd

from dirjax.data import DataBundle, age, images, own

DEFAULTS = {"root": "", "path_column": "path", "split_column": "", "per_bin": 30, "split_seed": 0, "bin_width": 1.0,
            "bin_start": None, "img_size": 64, "augment": True, "many_shot_thr": 100, "low_shot_thr": 20}
REQUIRED = ("csv", "target")
MAX_LISTED = 10  # missing images named in an error message


def _augment(example: dict, rng, padding: int) -> dict:
  return {**example, "inputs": images.random_crop_flip(example["inputs"], rng, padding=padding).copy()}


def get_data(config: Any, *, seed: int) -> DataBundle:
  """DataBundle of an image folder (keys in the module docstring); `seed` is unused (see `tabular`)."""
  del seed
  config = own.options(config, "image_folder", REQUIRED, DEFAULTS)
  csv = os.path.expanduser(config.csv)
  if not os.path.isfile(csv):
    raise FileNotFoundError(f"data.csv {csv!r} does not exist; set --config.data.csv to the CSV of image paths "
                            "and labels")
  table = pd.read_csv(csv)
  missing = [c for c in (config.path_column, config.target, config.split_column) if c and c not in table.columns]
  if missing:
    raise ValueError(f"{csv} has no column(s) {missing}; its columns are {list(table.columns)}")
  root = os.path.expanduser(config.root) if config.root else os.path.dirname(os.path.abspath(csv))
  paths = table[config.path_column].astype(str).tolist()
  absent = images.missing_files(root, paths)
  if absent:
    more = f" and {len(absent) - MAX_LISTED} more" if len(absent) > MAX_LISTED else ""
    raise FileNotFoundError(f"{len(absent)} of {len(paths)} images listed in {csv} are missing under {root}: "
                            f"{', '.join(absent[:MAX_LISTED])}{more}; paths are relative to data.root")
  labels = own.check_labels(table[config.target].to_numpy(), csv, config.target)
  splits, binning = own.assign_splits(labels, config,
                                      table[config.split_column].to_numpy() if config.split_column else None)
  sources = {s: age.AgeImageSource(root, [p for p, k in zip(paths, splits) if k == s], labels[splits == s],
                                   config.img_size) for s in own.SPLITS}
  padding = max(1, round(config.img_size * 16 / 224))
  return DataBundle(
    splits={s: grain.MapDataset.source(source) for s, source in sources.items()},
    train_augment=functools.partial(_augment, padding=padding) if config.augment else None,
    train_labels=labels[splits == "train"], binning=binning, fds_buckets=own.fds_buckets(binning),
    evaluate=own.evaluator(labels, splits, binning, config))
