"""The stress-test protocols of Puetz et al. (2026, "Deconstructing Deep Imbalanced Regression",
Artificial Intelligence Review; noah-puetz/deconstructing_deep_imbalanced_regression
`data/create_protocols.py`): AgeDB-DIR resampled into balanced extrapolation, bimodal
interpolation and blind spot splits, and the same recipe as a seeded transform for any dataset with
scalar labels (`resample`).

The recipe, per distinct label (or label bin) y with weight w(y) of the protocol: draw
min(#rows with y, int(oversample · N · w(y) / Σw)) training rows with replacement (N: pool rows);
the test pool is the rows never drawn, from which each label gets `test_per_label` draws with
replacement (with `uniform_test`, labels with fewer unused rows are dropped); `align` clips the
training labels to the test range; val is `val_fraction` of the drawn training rows and every copy
of those rows leaves train; `hole` = [lo, hi] is removed from train and val afterwards.

`PROTOCOLS` also names each protocol's under-represented test range, reported by the evaluation as
`ranges/<name>`: the labels whose count in the published training file is below 20 (the DIR few-shot
threshold): ages ≤ 27 and ≥ 73 (extrapolation tails), 46–58 (interpolation middle), 47–53 (blind
spot, absent from train and val).
"""

import dataclasses
from collections.abc import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Protocol:
  file: str  # the published split file (columns age,path,split) in <data_dir>/protocols/
  weight: Callable[[np.ndarray], np.ndarray]  # training weight per label
  ranges: dict  # name -> ((lo, hi), ...): the under-represented test range
  uniform_test: bool = True
  align: bool = False
  pool: tuple[float, float] | None = None  # labels kept in the pool
  hole: tuple[float, float] | None = None  # removed from train and val


PROTOCOLS = {
  "balanced_extrapolation": Protocol(
    "agedb_extrapolation.csv", lambda y: np.exp(-0.01 * (y - 50.0) ** 2), {"tails": ((0, 27), (73, 200))}),
  "bimodal_interpolation": Protocol(
    "agedb_interpolation.csv", lambda y: np.exp(-0.01 * (y - 25.0) ** 2) + np.exp(-0.01 * (y - 80.0) ** 2),
    {"middle": ((46, 58),)}, align=True),
  "blind_spot": Protocol(
    "agedb_blindspot.csv", lambda y: np.ones_like(y, dtype=np.float64), {"blind_spot": ((47, 53),)},
    uniform_test=False, align=True, pool=(20, 73), hole=(47, 53)),
}


def get(name: str) -> Protocol:
  if name not in PROTOCOLS:
    raise ValueError(f"unknown data.protocol {name!r}; valid: {', '.join(PROTOCOLS)} (or '' for the standard split)")
  return PROTOCOLS[name]


def resample(labels, protocol: Protocol | str, *, seed: int, oversample: float = 4.0, test_per_label: int = 50,
             val_fraction: float = 0.1, bin_width: float | None = None) -> dict[str, np.ndarray]:
  """Row indices (into `labels`, with repeats) of the protocol's train / val / test splits, drawn
  with `np.random.default_rng(seed)` (module docstring). Labels are grouped by exact value, or by
  floor(y / bin_width) for continuous labels (the group's weight is that of its first label)."""
  protocol = get(protocol) if isinstance(protocol, str) else protocol
  labels = np.asarray(labels, np.float64).ravel()
  if labels.size == 0 or not np.isfinite(labels).all():
    raise ValueError("resample: labels must be a non-empty array of finite numbers")
  rng = np.random.default_rng(seed)
  pool = np.arange(labels.size)
  if protocol.pool is not None:
    pool = pool[(labels >= protocol.pool[0]) & (labels <= protocol.pool[1])]
  keys = labels if bin_width is None else np.floor(labels / bin_width)
  groups, first = np.unique(keys[pool], return_index=True)
  members = [pool[keys[pool] == g] for g in groups]
  weights = protocol.weight(labels[pool][first])
  targets = (oversample * pool.size * weights / weights.sum()).astype(np.int64)
  train = np.concatenate([rng.choice(m, min(m.size, t), replace=True) for m, t in zip(members, targets)])
  unused = np.setdiff1d(pool, train)
  test_parts = []
  for g in groups:
    rows = unused[keys[unused] == g]
    if rows.size == 0 or (protocol.uniform_test and rows.size < test_per_label):
      continue
    test_parts.append(rng.choice(rows, min(rows.size, test_per_label), replace=True))
  test = np.concatenate(test_parts)
  if protocol.align:
    train = train[(labels[train] >= labels[test].min()) & (labels[train] <= labels[test].max())]
  val = train[rng.choice(train.size, int(round(val_fraction * train.size)), replace=False)]
  train = train[~np.isin(train, val)]
  if protocol.hole is not None:
    lo, hi = protocol.hole
    train, val = (s[(labels[s] < lo) | (labels[s] > hi)] for s in (train, val))
  return {"train": train, "val": val, "test": test}
