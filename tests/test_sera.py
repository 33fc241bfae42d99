"""SERA (Ribeiro & Moniz 2020) and the relevance-based metrics of every scalar evaluation."""

import numpy as np
import pytest

from dirjax import metrics
from dirjax.data import smogn


def sera_by_definition(preds, labels, phi, step=1e-4):
  """Literal transcription: SER_t = Σ_{i: φ(yᵢ) ≥ t} (ŷᵢ − yᵢ)², SERA = ∫₀¹ SER_t dt (trapezoid on a t grid,
  as the paper's Eq. 7 with a fine step)."""
  ts = np.arange(0.0, 1.0 + step / 2, step)
  ser = np.array([sum((p - y) ** 2 for p, y, f in zip(preds, labels, phi) if f >= t) for t in ts])
  return float(np.sum((ser[1:] + ser[:-1]) / 2 * np.diff(ts)))


def test_sera_hand_example():
  # φ = (0, 0.5, 1), squared errors (4, 1, 9): ∫ SER_t = 0·4 + 0.5·1 + 1·9 = 9.5
  assert metrics.sera([2.0, 1.0, 3.0], [0.0, 0.0, 0.0], [0.0, 0.5, 1.0]) == pytest.approx(9.5)


def test_sera_matches_the_definition():
  rng = np.random.default_rng(0)
  labels = rng.exponential(10.0, size=60)
  preds = labels + rng.normal(0, 2.0, size=60)
  phi = smogn.relevance(labels, smogn.relevance_control_points(labels))
  assert metrics.sera(preds, labels, phi) == pytest.approx(sera_by_definition(preds, labels, phi), rel=2e-3)


def test_relevance_metrics_box_plot_and_control_points():
  train = np.concatenate([np.arange(20.0, 41.0), [90.0]])  # 90 is beyond the upper whisker → φ(90) = 1
  labels = np.array([30.0, 60.0, 90.0])
  preds = labels + np.array([1.0, 2.0, 3.0])
  phi = smogn.relevance(labels, smogn.relevance_control_points(train))
  got = metrics.relevance_metrics(preds, labels, train)
  assert got["sera"] == pytest.approx(sera_by_definition(preds, labels, phi), rel=2e-3)
  assert phi[2] == 1.0 and phi[0] == 0.0  # the median 30 is not relevant, the outlier 90 is
  # user control points: φ = 0 from 0 to 40, 1 from 80 (smooth step between) → φ(30)=0, φ(60)=0.5, φ(90)=1
  got = metrics.relevance_metrics(preds, labels, train, control_points=[[0.0, 0.0], [40.0, 0.0], [80.0, 1.0]])
  assert got["sera"] == pytest.approx(0.5 * 4 + 1.0 * 9)
  assert got["rare_count"] == 2 and got["rare_mse"] == pytest.approx((4 + 9) / 2)
  with pytest.raises(ValueError, match="increasing y"):
    metrics.relevance_metrics(preds, labels, train, control_points=[[80.0, 1.0], [40.0, 0.0]])


def test_scalar_evaluation_reports_sera():
  from dirjax import weighting
  from dirjax.data import scalar_evaluator
  train = np.repeat(np.arange(10.0), 3)
  test = np.arange(10.0)
  evaluate = scalar_evaluator({"test": test}, train, weighting.Binning(10), many_shot_thr=2, low_shot_thr=1,
                              ranges={"top": ((8, 9),)})
  out = evaluate("test", test + 1.0)
  assert out["relevance"]["sera"] == pytest.approx(np.sum(smogn.relevance(test, smogn.relevance_control_points(train))))
  assert out["ranges"]["top"] == {"mae": 1.0, "mse": 1.0, "gm": 1.0, "count": 2}
