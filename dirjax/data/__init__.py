"""Dataset registry and the `DataBundle` every data module returns.

`config.data.name` selects a module (lazy import, so a benchmark's optional dependencies are only
needed when it is used); each module exposes `get_data(config.data, *, seed) -> DataBundle`.
`tabular` (a CSV / Parquet / .npz table) and `image_folder` (images + a CSV of paths and labels)
take your own data with no code; any other name is the import path of your own such module
(`my_data`, `my_project.my_data`), so new data needs no change to dirjax.
"""

import dataclasses
import difflib
import importlib
import importlib.util
from typing import Any, Callable

import grain
import numpy as np

from dirjax import weighting

_MODULES = {
  "synthetic_1d": "dirjax.data.synthetic",
  "synthetic_2d": "dirjax.data.synthetic",
  "synthetic_images": "dirjax.data.synthetic",
  "agedb_dir": "dirjax.data.agedb",
  "imdb_wiki_dir": "dirjax.data.imdb_wiki",
  "nyud2_dir": "dirjax.data.nyud2",
  "stsb_dir": "dirjax.data.stsb",
  "tabular": "dirjax.data.tabular",
  "image_folder": "dirjax.data.image_folder",
}
DATASETS = tuple(_MODULES)


@dataclasses.dataclass
class DataBundle:
  """Everything the trainer needs from a benchmark (contract in docs/architecture.md).

  `splits` hold dict elements `{"inputs": ..., "targets": float32 [d] or [H,W,1]}` (+ `"mask"` for
  dense tasks); `evaluate(split, preds)` takes predictions in split order and returns a nested
  metrics dict such as `{"all": {"mae": ...}, "many": {...}, "balanced": {"bmae": ...}}`.

  `train_bin_counts` (optional): the exact training mass per bin of `binning` when `train_labels`
  only approximate it (NYUD2-DIR: the reference's pixel counts `TRAIN_BUCKET_NUM`); the INV/SQINV
  (+LDS) weight tables and the BNI bucket prior are then built from these counts, with the bins
  below `first_counted_bin` taking that bin's value (the reference's `bucket_start`).

  `split_targets` (optional): each split's targets in split order, when the benchmark has them
  without reading its elements (the age benchmarks, whose elements decode a JPEG); `targets(split)`
  reads them from there, else from the elements.

  `device_transform` (optional): `(batch, augment_seed, epoch) -> batch` run inside the jitted steps on
  every batch, when the elements hold raw inputs (the age benchmarks' prepared uint8 images) that the
  device normalises and, with an `augment_seed` (training), augments from (seed, epoch, `batch["position"]`);
  `None` as `augment_seed` for evaluation. Such bundles have no `train_augment`.
  """
  splits: dict[str, grain.MapDataset]
  train_augment: Callable[[dict, np.random.Generator], dict] | None
  train_labels: np.ndarray
  binning: weighting.Binning
  fds_buckets: dict
  evaluate: Callable[[str, np.ndarray], dict]
  fds_split: str = "train"
  train_bin_counts: np.ndarray | None = None
  first_counted_bin: int = 0
  split_targets: dict[str, np.ndarray] | None = None
  device_transform: Callable[[dict, int | None, Any], dict] | None = None

  def targets(self, split: str) -> np.ndarray:
    """The targets of `split` stacked in split order (`[N, *target shape]`)."""
    if self.split_targets is not None and split in self.split_targets:
      return self.split_targets[split]
    dataset = self.splits[split]
    return np.stack([np.asarray(dataset[i]["targets"]) for i in range(len(dataset))])


def module_name(name: str) -> str:
  """The module of `data.name`: a registered name or the import path of an importable module."""
  if name in _MODULES:
    return _MODULES[name]
  try:
    if name and importlib.util.find_spec(name) is not None:
      return name
  except (ImportError, ValueError):
    pass
  close = difflib.get_close_matches(name, DATASETS, n=1)
  hint = f"did you mean {close[0]!r}? " if close else ""
  raise ValueError(f"unknown data.name {name!r}; {hint}valid: {', '.join(DATASETS)}, or the import path of your "
                   "own module with get_data(config, *, seed) -> DataBundle (e.g. 'my_data', importable from the "
                   "current folder or the config's folder)")


def get_data(config: Any, *, seed: int) -> DataBundle:
  """Builds the benchmark `config.name` (see `module_name`); unknown names fail listing the valid ones."""
  name = config.name
  module = importlib.import_module(module_name(name))
  if not callable(getattr(module, "get_data", None)):
    raise ValueError(f"data module {module.__name__!r} has no get_data(config, *, seed) function")
  bundle = module.get_data(config, seed=seed)
  for split in ("train", bundle.fds_split):
    if split not in bundle.splits:
      raise ValueError(f"data {name!r} has no {split!r} split (has {sorted(bundle.splits)})")
  return bundle


def scalar_evaluator(split_labels: dict[str, np.ndarray], train_labels: np.ndarray,
                     binning: weighting.Binning, *, many_shot_thr: int = 100,
                     low_shot_thr: int = 20, relevance_points=None,
                     ranges: dict | None = None) -> Callable[[str, np.ndarray], dict]:
  """Default `DataBundle.evaluate` for scalar targets: DIR shot metrics + Balanced-MSE metrics + SERA.

  Returns `{"all"|"many"|"medium"|"few": {"mae","mse","gm","count"}, "balanced": {...},
  "relevance": {"sera", ...}}` (DIR `shot_metrics`, thresholds 100/20 for the age benchmarks;
  `balanced_metrics` of Ren et al.; `relevance_metrics` with φ of the training labels or
  `relevance_points`) and `"ranges": {name: {"mae","mse","gm","count"}}` of the samples inside
  each label range of `ranges` ({name: ((lo, hi), ...)}, a protocol's under-represented range).
  """
  from dirjax import metrics  # imported lazily: host-side only

  def evaluate(split: str, preds: np.ndarray) -> dict:
    if split not in split_labels:
      raise ValueError(f"unknown split {split!r}; have {sorted(split_labels)}")
    labels = split_labels[split]
    preds = np.asarray(preds, np.float64).reshape(labels.shape)
    out = metrics.shot_metrics(preds, labels, train_labels, many_shot_thr=many_shot_thr,
                               low_shot_thr=low_shot_thr, binning=binning)
    out["balanced"] = metrics.balanced_metrics(preds, labels, binning=binning, train_labels=train_labels,
                                               many_shot_thr=many_shot_thr, low_shot_thr=low_shot_thr)
    out["relevance"] = metrics.relevance_metrics(preds, labels, train_labels, relevance_points)
    if ranges:
      out["ranges"] = {name: metrics.range_metrics(preds, labels, intervals) for name, intervals in ranges.items()}
    return out

  return evaluate
