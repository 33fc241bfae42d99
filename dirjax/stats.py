"""Seed statistics: mean with a Student-t confidence interval, and the paired difference of two
methods trained on the same seeds (Puetz et al. 2026 and Paplhám et al., CVPR 2024, compare DIR
methods against the seed spread of the baseline)."""

import math

import numpy as np
from scipy import stats as scipy_stats


def mean_interval(values, confidence: float = 0.95) -> dict:
  """Mean of `values` (one per seed) and its two-sided Student-t interval
  mean ± t_{(1+c)/2, n-1} · s / √n (s: sample standard deviation, ddof 1).

  Returns {"mean", "low", "high", "half_width", "std", "n", "values"}; with one value the interval
  fields are None (a single seed has no spread)."""
  if not 0 < confidence < 1:
    raise ValueError(f"confidence must be in (0, 1), got {confidence}")
  x = np.asarray(values, dtype=np.float64).ravel()
  if x.size == 0:
    raise ValueError("mean_interval needs at least one value")
  n, mean = int(x.size), float(x.mean())
  out = {"mean": mean, "low": None, "high": None, "half_width": None, "std": None, "n": n,
         "values": [float(v) for v in x]}
  if n >= 2:
    std = float(x.std(ddof=1))
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    out.update(low=mean - half, high=mean + half, half_width=half, std=std)
  return out


def paired_difference(values, baseline, confidence: float = 0.95) -> dict:
  """`mean_interval` of the per-seed differences values[i] - baseline[i] (the same seed i trained
  both), plus "excludes_zero": True when the whole interval lies on one side of 0 (a paired t-test
  at level 1 - confidence rejects "no difference"); None with a single seed."""
  a, b = np.asarray(values, dtype=np.float64).ravel(), np.asarray(baseline, dtype=np.float64).ravel()
  if a.shape != b.shape:
    raise ValueError(f"paired difference needs one value per seed in both runs, got {a.size} and {b.size}")
  out = mean_interval(a - b, confidence)
  out["excludes_zero"] = None if out["low"] is None else bool(out["low"] > 0 or out["high"] < 0)
  return out
