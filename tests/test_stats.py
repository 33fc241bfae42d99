"""Seed statistics (`dirjax.stats`) against scipy's t-interval and a fixed-seed bootstrap."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from dirjax import stats


@pytest.mark.parametrize("values", [[1.0, 2.0, 4.0], [3.2, 3.1, 3.5, 2.9, 3.3], list(np.linspace(-1, 7, 10))])
def test_mean_interval_matches_scipy_t_interval(values):
  x = np.asarray(values)
  low, high = scipy_stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=scipy_stats.sem(x))
  got = stats.mean_interval(values)
  np.testing.assert_allclose([got["low"], got["high"]], [low, high], rtol=1e-12)
  assert got["mean"] == pytest.approx(x.mean()) and got["n"] == len(x)


def test_mean_interval_by_hand_two_values():
  # n = 2: s = |a - b| / √2, half-width = t_{0.975, 1} · s / √2 = 12.7062047 · |a - b| / 2
  got = stats.mean_interval([1.0, 3.0])
  assert got["half_width"] == pytest.approx(12.706204736174707, rel=1e-9)


def test_mean_interval_covers_like_a_bootstrap():
  """Normal samples: the t half-width is close to 1.96 · (bootstrap standard error of the mean) · t/z."""
  rng = np.random.default_rng(0)
  x = rng.normal(10.0, 2.0, size=40)
  boot = x[rng.integers(0, x.size, size=(20000, x.size))].mean(axis=1)
  got = stats.mean_interval(x)
  lo, hi = np.quantile(boot, [0.025, 0.975])
  assert got["low"] == pytest.approx(lo, abs=0.15) and got["high"] == pytest.approx(hi, abs=0.15)


def test_one_seed_has_no_interval():
  got = stats.mean_interval([2.5])
  assert got["mean"] == 2.5 and got["low"] is None and got["half_width"] is None


def test_paired_difference_identical_runs_contain_zero():
  base = [1.3, 1.1, 1.7, 1.2, 1.5]
  got = stats.paired_difference(base, base)
  assert got["low"] <= 0 <= got["high"] and got["excludes_zero"] is False


def test_paired_difference_shifted_method_excludes_zero():
  rng = np.random.default_rng(1)
  base = rng.normal(5.0, 1.0, size=5)  # a large seed spread...
  method = base - 0.3 + rng.normal(0, 0.02, size=5)  # ...but the same shift on every seed
  got = stats.paired_difference(method, base)
  assert got["high"] < 0 and got["excludes_zero"] is True
  # the unpaired intervals overlap: only the pairing detects the shift
  a, b = stats.mean_interval(method), stats.mean_interval(base)
  assert a["high"] > b["low"]
  d = method - base
  low, high = scipy_stats.t.interval(0.95, 4, loc=d.mean(), scale=scipy_stats.sem(d))
  np.testing.assert_allclose([got["low"], got["high"]], [low, high], rtol=1e-12)


def test_bad_inputs():
  with pytest.raises(ValueError, match="one value per seed"):
    stats.paired_difference([1, 2, 3], [1, 2])
  with pytest.raises(ValueError, match="confidence"):
    stats.mean_interval([1, 2], confidence=95)
