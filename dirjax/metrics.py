"""Evaluation metrics of the DIR benchmarks (host-side numpy, on gathered predictions).

Shot groups: "many" / "medium" / "few" (logged as Many / Median / Low by the references). Every
function returns plain Python floats; a group without samples has count 0 and metrics None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from dirjax.weighting import Binning, finite_array

SHOTS = ("many", "medium", "few")

# STS-B-DIR `STSShotAverage` (`sts-b-dir/util.py`): hard-coded lists of 0.1-wide label bins.
STSB_BINNING = Binning(50, 0.0, 0.1)
STSB_SHOTS: Mapping[str, tuple[int, ...]] = {
    "many": (0, *range(10, 49, 2), 49),
    "medium": (2, 4, 6, 8, 27, 35, 37),
    "few": (1, 3, 5, 7, 9, *range(11, 26, 2), 29, 31, 33, *range(39, 48, 2)),
}

# NYUD2-DIR `Evaluator` (`nyud2-dir/util.py`): 0.1 m depth buckets min(int(10 d), 99).
NYUD2_BINNING = Binning(100, 0.0, 0.1)
NYUD2_SHOTS: Mapping[str, tuple[int, ...]] = {
    "many": (*range(9, 46), 47, 49),
    "medium": (7, 8, 46, 48, *range(50, 57), 58, 60, 61, 63),
    "few": (*range(0, 7), 57, 59, 62, *range(64, 100)),
}


def _flat_labels(labels, name: str) -> np.ndarray:
  labels = finite_array(labels, name)
  if labels.ndim == 2 and labels.shape[1] == 1:
    labels = labels[:, 0]
  if labels.ndim != 1:
    raise ValueError(f"{name} must be scalar targets [N] or [N, 1], got shape {labels.shape}")
  return labels


def _pairs(preds, labels) -> tuple[np.ndarray, np.ndarray]:
  """Scalar-target predictions and labels as float64 [N]; [N] and [N, 1] are accepted."""
  preds = np.asarray(preds)
  if preds.shape != np.shape(labels):
    raise ValueError(f"preds {preds.shape} and labels {np.shape(labels)} must have the same shape")
  labels = _flat_labels(labels, "labels")
  return preds.reshape(labels.shape).astype(np.float64), labels.astype(np.float64)


def _train_counts(labels: np.ndarray, train_labels, binning: Binning | None) -> np.ndarray:
  """Training count of each test sample's label: exact match with the int-cast training labels
  (reference `shot_metrics`), or the training count of its bin when `binning` is given."""
  train_labels = _flat_labels(train_labels, "train_labels")
  if train_labels.size == 0:
    raise ValueError("train_labels is empty: shots need the training label counts")
  if binning is not None:
    counts = np.bincount(binning.index(train_labels), minlength=binning.num_bins)
    return counts[binning.index(labels)]
  values, counts = np.unique(train_labels.astype(np.int64), return_counts=True)
  pos = np.minimum(np.searchsorted(values, labels), values.size - 1)
  return np.where(values[pos] == labels, counts[pos], 0)


def _threshold_codes(train_counts: np.ndarray, many_shot_thr: float, low_shot_thr: float) -> np.ndarray:
  """0 = many (count > many_thr), 2 = few (count < low_thr), 1 = medium otherwise."""
  return np.where(train_counts > many_shot_thr, 0, np.where(train_counts < low_shot_thr, 2, 1))


def _list_codes(bins: np.ndarray, shot_of_bin: Mapping[str, Sequence[int]], num_bins: int) -> np.ndarray:
  """Shot code per sample from hard-coded bin lists; bins in no list get -1 (counted in "all")."""
  if set(shot_of_bin) != set(SHOTS):
    raise ValueError(f"shot lists must have exactly the keys {SHOTS}, got {sorted(shot_of_bin)}")
  table = np.full(num_bins, -1)
  for code, shot in enumerate(SHOTS):
    table[np.asarray(shot_of_bin[shot], dtype=np.int64)] = code
  return table[bins]


def _groups(codes: np.ndarray):
  yield "all", np.ones(codes.shape, bool)
  for code, shot in enumerate(SHOTS):
    yield shot, codes == code


def geometric_mean(abs_errors: np.ndarray, zero_floor: float | None = None) -> float:
  """`scipy.stats.gmean` of |errors|: any exact zero gives 0 (age code, docs/deviations.md R15) unless `zero_floor`
  replaces zeros first (STS-B uses 1e-10)."""
  abs_errors = np.asarray(abs_errors, dtype=np.float64)
  if zero_floor is not None:
    abs_errors = np.where(abs_errors == 0, zero_floor, abs_errors)
  if np.any(abs_errors == 0):
    return 0.0
  return float(np.exp(np.mean(np.log(abs_errors))))


def _error_stats(errors: np.ndarray, zero_floor: float | None = None) -> dict:
  if errors.size == 0:
    return {"mae": None, "mse": None, "gm": None, "count": 0}
  return {"mae": float(np.mean(np.abs(errors))), "mse": float(np.mean(errors ** 2)),
          "gm": geometric_mean(np.abs(errors), zero_floor), "count": int(errors.size)}


def shot_metrics(preds, labels, train_labels, many_shot_thr: float = 100, low_shot_thr: float = 20,
                 binning: Binning | None = None) -> dict:
  """MAE, MSE, GM and sample count overall and per shot (`shot_metrics` in `agedb-dir/train.py`).

  A test sample's shot is the training count of its exact label (training labels cast to int, as
  the reference; non-integer test labels count 0 → few) or of its bin when `binning` is given
  (float labels): many if > many_shot_thr, few if < low_shot_thr, else medium (100/20 for age,
  10/2 in the tutorial). Group MAE/MSE are sample means, GM the geometric mean of |e| (0 if an
  error is exactly 0).
  """
  preds, labels = _pairs(preds, labels)
  codes = _threshold_codes(_train_counts(labels, train_labels, binning), many_shot_thr, low_shot_thr)
  errors = preds - labels
  return {name: _error_stats(errors[mask]) for name, mask in _groups(codes)}


def balanced_metrics(preds, labels, binning: Binning | None = None, train_labels=None,
                     many_shot_thr: float = 100, low_shot_thr: float = 20) -> dict:
  """Balanced MAE/MSE (BalancedMSE `imdb-wiki-dir/train.py` `validate`, `--balanced_metric`): the error
  is averaged per distinct test label (or per label bin with `binning`), then over labels without weighting.

  Returns {"bmae", "bmse"}; with `train_labels` also "many" / "medium" / "few", each
  {"bmae", "bmse", "gm", "count", "num_labels"}: the mean over that shot's labels, the (not
  balanced) sample-level geometric mean and the numbers of test samples and labels.
  """
  preds, labels = _pairs(preds, labels)
  if labels.size == 0:
    raise ValueError("balanced metrics need at least one test sample")
  keys = labels if binning is None else binning.index(labels)
  first, inverse, sizes = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)[1:]
  errors = preds - labels
  label_mae = np.bincount(inverse, np.abs(errors)) / sizes
  label_mse = np.bincount(inverse, errors ** 2) / sizes
  result = {"bmae": float(label_mae.mean()), "bmse": float(label_mse.mean())}
  if train_labels is None:
    return result
  label_codes = _threshold_codes(_train_counts(labels[first], train_labels, binning), many_shot_thr, low_shot_thr)
  for code, shot in enumerate(SHOTS):
    in_shot = label_codes == code
    samples = in_shot[inverse]
    result[shot] = {
        "bmae": float(label_mae[in_shot].mean()) if in_shot.any() else None,
        "bmse": float(label_mse[in_shot].mean()) if in_shot.any() else None,
        "gm": geometric_mean(np.abs(errors[samples])) if in_shot.any() else None,
        "count": int(samples.sum()), "num_labels": int(in_shot.sum()),
    }
  return result


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
  x, y = x - x.mean(), y - y.mean()
  denominator = math.sqrt(float(np.sum(x * x) * np.sum(y * y)))
  return float(np.sum(x * y) / denominator) if denominator > 0 else math.nan


def _average_ranks(x: np.ndarray) -> np.ndarray:
  """1-based ranks, ties sharing their average rank (scipy `rankdata(method="average")`)."""
  _, inverse, sizes = np.unique(x, return_inverse=True, return_counts=True)
  starts = np.cumsum(sizes) - sizes
  return (starts + (sizes + 1) / 2.0)[inverse]


def correlation_metrics(preds, labels, shot_of_bin: Mapping[str, Sequence[int]] | None = None,
                        binning: Binning | None = None) -> dict:
  """STS-B-DIR metrics (`STSShotAverage` in `sts-b-dir/util.py`) overall and per shot.

  `preds` are on the label scale (the reference multiplies the model output by 5, unclipped).
  Shot = hard-coded bin lists (default `STSB_SHOTS` over `STSB_BINNING`, float32 floor(10 y) with
  5.0 → 49). Per group: MSE, MAE, GM with exact-zero errors replaced by 1e-10, Pearson r,
  Spearman ρ and count. Deviation: r and ρ are None (reference: 0) for fewer than 2 samples.
  """
  preds, labels = _pairs(preds, labels)
  binning = STSB_BINNING if binning is None else binning
  codes = _list_codes(binning.index(labels), STSB_SHOTS if shot_of_bin is None else shot_of_bin, binning.num_bins)
  result = {}
  for name, mask in _groups(codes):
    p, y = preds[mask], labels[mask]
    stats = _error_stats(p - y, zero_floor=1e-10)
    paired = p.size >= 2
    stats["pearson"] = _pearson(p, y) if paired else None
    stats["spearman"] = _pearson(_average_ranks(p), _average_ranks(y)) if paired else None
    result[name] = stats
  return result


DEPTH_METRICS = ("rmse", "mse", "mae", "abs_rel", "log10", "delta1", "delta2", "delta3")


def depth_metrics(preds, depths, mask=None, shot_of_bucket: Mapping[str, Sequence[int]] | None = None) -> dict:
  """NYUD2-DIR per-pixel metrics (`Evaluator` in `nyud2-dir/util.py`) overall and per shot.

  Over the selected pixels (`mask`, e.g. the balanced test mask; default all): MSE, RMSE = √MSE,
  MAE, ABS_REL = mean |e| / d, LOG10 = mean |log10 p - log10 d|, δ_k = fraction with
  max(p/d, d/p) <= 1.25^k, count. A pixel's shot comes from its bucket min(int(10 d), 99) through
  `shot_of_bucket` (default `NYUD2_SHOTS`). As the reference, p <= 0 is not clamped (LOG10 / δ
  become NaN or inf).
  """
  preds, depths = np.asarray(preds), finite_array(depths, "depths")
  if preds.shape != depths.shape:
    raise ValueError(f"preds {preds.shape} and depths {depths.shape} must have the same shape")
  if mask is not None:
    mask = np.asarray(mask)
    if mask.shape != depths.shape:
      raise ValueError(f"mask {mask.shape} must have the depths' shape {depths.shape}")
    preds, depths = preds[mask.astype(bool)], depths[mask.astype(bool)]
  preds, depths = preds.astype(np.float64).ravel(), depths.astype(np.float64).ravel()
  codes = _list_codes(NYUD2_BINNING.index(depths), NYUD2_SHOTS if shot_of_bucket is None else shot_of_bucket,
                      NYUD2_BINNING.num_bins)
  slot = codes + 1  # 0: in no shot list, 1..3: many, medium, few

  def group_sums(values):  # [all, many, medium, few], one pass over the pixels
    sums = np.bincount(slot, weights=values, minlength=4)
    return np.concatenate([[sums.sum()], sums[1:]])

  with np.errstate(divide="ignore", invalid="ignore"):
    abs_err = np.abs(preds - depths)
    ratio = np.maximum(preds / depths, depths / preds)
    sums = {"mse": group_sums(abs_err ** 2), "mae": group_sums(abs_err), "abs_rel": group_sums(abs_err / depths),
            "log10": group_sums(np.abs(np.log10(preds) - np.log10(depths))),
            **{f"delta{k}": group_sums(ratio <= 1.25 ** k) for k in (1, 2, 3)}}
  counts = group_sums(np.ones_like(depths)).astype(np.int64)
  result = {}
  for g, name in enumerate(("all", *SHOTS)):
    if counts[g] == 0:
      result[name] = dict.fromkeys(DEPTH_METRICS) | {"count": 0}
      continue
    stats = {key: float(total[g] / counts[g]) for key, total in sums.items()}
    stats["rmse"] = math.sqrt(stats["mse"])
    result[name] = {key: stats[key] for key in DEPTH_METRICS} | {"count": int(counts[g])}
  return result


def sera(preds, labels, phi) -> float:
  """SERA (Ribeiro & Moniz, Machine Learning 109, 2020, Eq. 6–7): ∫₀¹ SER_t dt with
  SER_t = Σ_{i: φ(yᵢ) ≥ t} (ŷᵢ − yᵢ)². Sample i counts for every t ≤ φ(yᵢ), so the integral is
  exactly Σᵢ φ(yᵢ)(ŷᵢ − yᵢ)² (the paper approximates it with the trapezoid rule on a t grid)."""
  preds, labels = _pairs(preds, labels)
  phi = np.asarray(phi, np.float64).reshape(labels.shape)
  if np.any((phi < 0) | (phi > 1)) or not np.isfinite(phi).all():
    raise ValueError("sera: relevance φ must lie in [0, 1]")
  return float(np.sum(phi * (preds - labels) ** 2))


def relevance_metrics(preds, labels, train_labels, control_points=None, rare_threshold: float = 0.5) -> dict:
  """SERA with the relevance φ of the TRAINING labels: SMOGN's box-plot relevance (extremes beyond the
  whiskers get φ = 1, the median 0; `dirjax.data.smogn.relevance`) or user `control_points` [[y, φ], ...]
  (as in smogn, labels below the first point get φ = 1 and above the last the last φ: start the points at
  the smallest label).
  Returns {"sera", "rare_mse", "rare_count"}: SERA, and the MSE over the test samples with
  φ ≥ `rare_threshold` (None when there are none)."""
  from dirjax.data import smogn  # the relevance function of SMOGN/SMOTER

  preds, labels = _pairs(preds, labels)
  train_labels = _flat_labels(train_labels, "train_labels")
  if control_points is None:
    control_points = smogn.relevance_control_points(train_labels)
  else:
    control_points = np.asarray(control_points, np.float64)
    if control_points.ndim != 2 or control_points.shape[1] != 2 or np.any(np.diff(control_points[:, 0]) <= 0):
      raise ValueError(f"relevance control points must be [[y, φ], ...] with increasing y, got {control_points.tolist()}")
  phi = smogn.relevance(labels, control_points)
  rare = phi >= rare_threshold
  errors = preds - labels
  return {"sera": sera(preds, labels, phi), "rare_mse": float(np.mean(errors[rare] ** 2)) if rare.any() else None,
          "rare_count": int(rare.sum())}


def range_metrics(preds, labels, intervals) -> dict:
  """MAE, MSE, GM and count of the samples whose label lies in one of the closed `intervals`
  ((lo, hi), ...): a protocol's under-represented range, e.g. the blind spot ((47, 53),) of Puetz et
  al. 2026 or the two tails of their extrapolation protocol."""
  preds, labels = _pairs(preds, labels)
  inside = np.zeros(labels.shape, bool)
  for low, high in intervals:
    inside |= (labels >= low) & (labels <= high)
  return _error_stats(preds[inside] - labels[inside])
