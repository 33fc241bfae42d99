"""Dataset registry and the `DataBundle` every data module returns.

`config.data.name` selects a module (lazy import, so a benchmark's optional dependencies are only
needed when it is used); each module exposes `get_data(config.data, *, seed) -> DataBundle`.
"""

import dataclasses
import importlib
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
}
DATASETS = tuple(_MODULES)


@dataclasses.dataclass
class DataBundle:
  """Everything the trainer needs from a benchmark (contract in docs/architecture.md).

  `splits` hold dict elements `{"inputs": ..., "targets": float32 [d] or [H,W,1]}` (+ `"mask"` for
  dense tasks); `evaluate(split, preds)` takes predictions in split order and returns a nested
  metrics dict such as `{"all": {"mae": ...}, "many": {...}, "balanced": {"bmae": ...}}`.
  """
  splits: dict[str, grain.MapDataset]
  train_augment: Callable[[dict, np.random.Generator], dict] | None
  train_labels: np.ndarray
  binning: weighting.Binning
  fds_buckets: dict
  evaluate: Callable[[str, np.ndarray], dict]
  fds_split: str = "train"


def get_data(config: Any, *, seed: int) -> DataBundle:
  """Builds the benchmark named `config.name`; unknown names fail listing the valid ones."""
  name = config.name
  if name not in _MODULES:
    raise ValueError(f"unknown data.name {name!r}; valid: {', '.join(DATASETS)}")
  bundle = importlib.import_module(_MODULES[name]).get_data(config, seed=seed)
  for split in ("train", bundle.fds_split):
    if split not in bundle.splits:
      raise ValueError(f"data {name!r} has no {split!r} split (has {sorted(bundle.splits)})")
  return bundle


def scalar_evaluator(split_labels: dict[str, np.ndarray], train_labels: np.ndarray,
                     binning: weighting.Binning, *, many_shot_thr: int = 100,
                     low_shot_thr: int = 20) -> Callable[[str, np.ndarray], dict]:
  """Default `DataBundle.evaluate` for scalar targets: DIR shot metrics + Balanced-MSE metrics.

  Returns `{"all"|"many"|"medium"|"few": {"mae","mse","gm","count"}, "balanced": {...}}`
  (DIR `shot_metrics`, thresholds 100/20 for the age benchmarks; `balanced_metrics` of Ren et al.).
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
    return out

  return evaluate
