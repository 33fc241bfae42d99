"""Kernel windows, binning, INV/SQINV/LDS tables and DenseWeight against scipy and the reference's values."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, signal, stats

from dirjax import weighting

# NYUD2-DIR per-bucket training pixel counts, copied as data from the reference repository's
# nyud2-dir/loaddata.py (`TRAIN_BUCKET_NUM`).
TRAIN_BUCKET_NUM = np.array([
    0, 0, 0, 0, 0, 0, 0, 25848691, 24732940, 53324326, 69112955, 54455432, 95637682, 71403954, 117244217,
    84813007, 126524456, 84486706, 133130272, 95464874, 146051415, 146133612, 96561379, 138366677, 89680276,
    127689043, 81608990, 119121178, 74360607, 106839384, 97595765, 66718296, 90661239, 53103021, 83340912,
    51365604, 71262770, 42243737, 65860580, 38415940, 53647559, 54038467, 28335524, 41485143, 32106001,
    35936734, 23966211, 32018765, 19297203, 31503743, 21681574, 16363187, 25743420, 12769509, 17675327,
    13147819, 15798560, 9547180, 14933200, 9663019, 12887283, 11803562, 7656609, 11515700, 7756306, 9046228,
    5114894, 8653419, 6859433, 8001904, 6430700, 3305839, 6318461, 3486268, 5621065, 4030498, 3839488, 3220208,
    4483027, 2555777, 4685983, 3145082, 2951048, 2762369, 2367581, 2546089, 2343867, 2481579, 1722140, 3018892,
    2325197, 1952354, 2047038, 1858707, 2052729, 1348558, 2487278, 1314198, 3338550, 1132666])


def scipy_lds_window(kernel, ks, sigma):
  """The reference recipe, written with scipy (independent of the library's own algorithm)."""
  half = (ks - 1) // 2
  if kernel == "gaussian":
    delta = np.zeros(ks)
    delta[half] = 1.0
    window = ndimage.gaussian_filter1d(delta, sigma=sigma)
  elif kernel == "triang":
    window = signal.windows.triang(ks)
  else:
    window = stats.laplace.pdf(np.arange(-half, half + 1), scale=sigma)
  return window / window.max()


# ----------------------------------------------------------------------------- kernel windows


@pytest.mark.parametrize("ks,sigma", [(1, 1.0), (3, 0.5), (3, 5.0), (5, 1.0), (5, 2.0), (7, 0.3), (9, 1.0),
                                      (9, 2.0), (11, 3.7), (15, 8.0)])
def test_gaussian_window_is_scipy_filtered_delta(ks, sigma):
  delta = np.zeros(ks)
  delta[ks // 2] = 1.0
  filtered = ndimage.gaussian_filter1d(delta, sigma=sigma)
  # Bit-exact: integer truncation after LDS (docs/deviations.md R4) must flip at the reference's values.
  np.testing.assert_array_equal(weighting.kernel_window("gaussian", ks, sigma), filtered / filtered.max())
  np.testing.assert_array_equal(weighting.kernel_window("gaussian", ks, sigma, normalize="sum"),
                                filtered / filtered.sum())


@pytest.mark.parametrize("ks", [1, 3, 5, 9, 21])
def test_triang_window_is_scipy_triang(ks):
  np.testing.assert_array_equal(weighting.kernel_window("triang", ks, 2.0), signal.windows.triang(ks))
  expected = signal.windows.triang(ks)
  np.testing.assert_allclose(weighting.kernel_window("triang", ks, 0.0, "sum"), expected / expected.sum(),
                             rtol=1e-12)


@pytest.mark.parametrize("ks,sigma", [(5, 2.0), (9, 1.0), (7, 0.5)])
def test_laplace_window_closed_form(ks, sigma):
  x = np.arange(ks) - ks // 2
  density = np.exp(-np.abs(x) / sigma) / (2 * sigma)
  np.testing.assert_allclose(weighting.kernel_window("laplace", ks, sigma), np.exp(-np.abs(x) / sigma), rtol=1e-12)
  np.testing.assert_allclose(weighting.kernel_window("laplace", ks, sigma, "sum"), density / density.sum(),
                             rtol=1e-12)


# Windows of DIR `get_lds_kernel_window` (`agedb-dir/utils.py`) (half windows; the windows are symmetric).
SPEC_WINDOWS = [
    ("gaussian", 5, 2, [0.858285, 0.945828, 1], [0.186251, 0.205248, 0.217003]),
    ("gaussian", 5, 1, [0.146444, 0.606866, 1], [0.058423, 0.242105, 0.398944]),
    ("gaussian", 9, 1, [0.000335, 0.011109, 0.135335, 0.606531, 1],
     [0.000134, 0.004432, 0.053991, 0.241971, 0.398944]),
    ("gaussian", 9, 2, [0.179272, 0.335761, 0.608718, 0.882832, 1],
     [0.035760, 0.066976, 0.121424, 0.176103, 0.199475]),
    ("triang", 5, 1, [1 / 3, 2 / 3, 1], [1 / 9, 2 / 9, 1 / 3]),
    ("laplace", 5, 2, [0.367879, 0.606531, 1], [0.124755, 0.205686, 0.339119]),
]


@pytest.mark.parametrize("kernel,ks,sigma,lds_half,fds_half", SPEC_WINDOWS)
def test_windows_match_spec_table(kernel, ks, sigma, lds_half, fds_half):
  half = ks // 2 + 1
  lds = weighting.kernel_window(kernel, ks, sigma, "max")
  fds = weighting.kernel_window(kernel, ks, sigma, "sum")
  np.testing.assert_allclose(lds[:half], lds_half, atol=1.5e-6)
  np.testing.assert_allclose(fds[:half], fds_half, atol=1.5e-6)
  np.testing.assert_allclose(lds, lds[::-1])
  assert lds.max() == pytest.approx(1.0) and fds.sum() == pytest.approx(1.0)


def test_wide_gaussian_window_is_flat_not_sampled():
  # `get_lds_kernel_window`: for (3, σ=5) the reflected filter is [1, 0.99995, 1]; the centre is not the max.
  window = weighting.kernel_window("gaussian", 3, 5.0)
  np.testing.assert_allclose(window, [1.0, 0.99995, 1.0], atol=5e-6)


@pytest.mark.parametrize("kernel,ks,sigma,match", [
    ("gaussian", 4, 2.0, "odd"), ("gaussian", 0, 2.0, "odd"), ("laplace", -3, 2.0, "odd"),
    ("gaussian", 5.0, 2.0, "odd"), ("gaussian", True, 2.0, "odd"), ("gaussian", 5, 0.0, "sigma"),
    ("laplace", 5, -1.0, "sigma"), ("gaussian", 5, float("nan"), "sigma"), ("box", 5, 2.0, "unknown kernel"),
])
def test_kernel_window_bad_arguments(kernel, ks, sigma, match):
  with pytest.raises(ValueError, match=match):
    weighting.kernel_window(kernel, ks, sigma)


def test_kernel_window_bad_normalize():
  with pytest.raises(ValueError, match="normalize"):
    weighting.kernel_window("gaussian", 5, 2.0, normalize="l2")


# ----------------------------------------------------------------------------- binning


def test_binning_age_rule_matches_reference_int_cast():
  ages = np.array([0, 1, 2.0, 35, 35.9, 119.99, 120, 121, 150, 186], np.float32)
  expected = [min(120, int(a)) for a in ages]
  np.testing.assert_array_equal(weighting.Binning(121).index(ages), expected)


def test_binning_stsb_matches_float32_histogram_edges(shared_data_dir):
  scores = read_stsb_scores(shared_data_dir, "train_new.tsv")
  edges = np.histogram(np.array([], np.float32), bins=50, range=(0.0, 5.0))[1]
  assert edges.dtype == np.float32
  expected = np.where(scores == 5.0, 49, np.searchsorted(edges, scores, side="right") - 1)
  np.testing.assert_array_equal(weighting.Binning(50, 0.0, 0.1).index(scores), expected)
  np.testing.assert_array_equal(np.bincount(expected, minlength=50),
                                np.histogram(scores, bins=50, range=(0.0, 5.0))[0])


def test_binning_float32_floor_q21():
  # docs/deviations.md R16: float32(1.4) = 1.39999998; in float64 floor(10·y) = 13, the reference histogram says 14.
  labels = np.array([1.4, 1.8, 2.6, 2.8, 3.1, 3.6, 3.8, 4.2, 4.6, 5.0], np.float32)
  np.testing.assert_array_equal(weighting.Binning(50, 0.0, 0.1).index(labels), [14, 18, 26, 28, 31, 36, 38, 42, 46, 49])
  assert int(np.floor(np.float64(labels[0]) * 10)) == 13


def test_binning_nyud2_rule():
  rng = np.random.default_rng(0)
  depths = np.concatenate([rng.uniform(0, 12, 5000), np.arange(0, 101) / 10, [9.95, 10.0, 0.0]]).astype(np.float32)
  expected = [min(int(d * np.float32(10)), 99) for d in depths]
  np.testing.assert_array_equal(weighting.Binning(100, 0.0, 0.1).index(depths), expected)


def test_binning_jax_matches_numpy_inside_jit():
  rng = np.random.default_rng(1)
  labels = np.concatenate([rng.uniform(-1, 6, 4000), np.arange(51) / 10]).astype(np.float32)
  binning = weighting.Binning(50, 0.0, 0.1)
  on_device = jax.jit(binning.index)(jnp.asarray(labels))
  assert isinstance(on_device, jax.Array) and on_device.dtype == jnp.int32
  np.testing.assert_array_equal(np.asarray(on_device), binning.index(labels))
  table = jnp.arange(50, dtype=jnp.float32)
  looked_up = jax.jit(lambda y: table[binning.index(y)])(jnp.asarray(labels).reshape(-1, 1))
  assert looked_up.shape == (labels.size, 1)


def test_binning_helpers_and_errors():
  nyud2 = weighting.Binning(100, 0.0, 0.1)
  np.testing.assert_allclose(nyud2.centers(), np.linspace(0, 10, 101)[:-1] + 0.05, rtol=1e-6)
  np.testing.assert_allclose(weighting.Binning(4, 10.0, 2.0).starts(), [10, 12, 14, 16])
  np.testing.assert_array_equal(weighting.Binning(4, 10.0, 2.0).in_range([9.9, 10, 17.9, 18]),
                                [False, True, True, False])
  with pytest.raises(ValueError, match="NaN"):
    weighting.Binning(10).index(np.array([1.0, np.nan]))
  with pytest.raises(ValueError, match="num_bins"):
    weighting.Binning(0)
  with pytest.raises(ValueError, match="bin_width"):
    weighting.Binning(10, 0.0, 0.0)


def test_joint_binning_index_is_row_major():
  rng = np.random.default_rng(2)
  labels = rng.uniform(-0.5, 3.5, size=(500, 2)).astype(np.float32)
  joint = weighting.JointBinning((weighting.Binning(3), weighting.Binning(4, 0.0, 0.5)))
  per_dim = [np.clip(np.floor(labels[:, 0]), 0, 2), np.clip(np.floor(labels[:, 1] * 2), 0, 3)]
  expected = np.ravel_multi_index(np.array(per_dim, np.int64), (3, 4))
  np.testing.assert_array_equal(joint.index(labels), expected)
  np.testing.assert_array_equal(np.asarray(jax.jit(joint.index)(jnp.asarray(labels))), expected)
  assert joint.num_bins == 12 and joint.centers().shape == (12, 2)
  np.testing.assert_allclose(joint.centers()[5], [1.5, 0.75])
  with pytest.raises(ValueError, match="last axis"):
    joint.index(labels[:, :1])


# ----------------------------------------------------------------------------- LDS smoothing


@pytest.mark.parametrize("mode", ["constant", "reflect", "mirror"])
@pytest.mark.parametrize("kernel,ks,sigma", [("gaussian", 5, 2.0), ("gaussian", 9, 1.0), ("triang", 7, 1.0),
                                             ("triang", 9, 1.0), ("laplace", 5, 2.0), ("gaussian", 5, 3.0)])
def test_lds_smooth_matches_scipy_convolve1d(mode, kernel, ks, sigma):
  rng = np.random.default_rng(3)
  counts = rng.integers(0, 60, size=23)
  counts[[0, 5, 6]] = 0
  window = scipy_lds_window(kernel, ks, sigma)
  truncated = ndimage.convolve1d(counts, window, mode=mode)
  assert truncated.dtype == counts.dtype
  smoothed = weighting.lds_smooth(counts, kernel, ks, sigma, mode=mode)
  assert smoothed.dtype == np.int64
  np.testing.assert_array_equal(smoothed, truncated)
  exact = ndimage.convolve1d(counts.astype(np.float64), window, mode=mode)
  np.testing.assert_array_equal(weighting.lds_smooth(counts, kernel, ks, sigma, mode=mode, faithful=False), exact)
  np.testing.assert_array_equal(weighting.lds_smooth(np.sqrt(counts), kernel, ks, sigma, mode=mode),
                                ndimage.convolve1d(np.sqrt(counts), window, mode=mode))


def test_lds_integer_truncation_example_from_spec():
  # BalancedMSE IMDB-WIKI `get_bucket_info`: ks 5, σ 1 window turns [0,0,1,0,0,3,0,0,0] into [0,0,1,1,1,3,1,0,0].
  counts = np.array([0, 0, 1, 0, 0, 3, 0, 0, 0])
  np.testing.assert_array_equal(weighting.lds_smooth(counts, "gaussian", 5, 1.0), [0, 0, 1, 1, 1, 3, 1, 0, 0])
  np.testing.assert_allclose(weighting.lds_smooth(counts, "gaussian", 5, 1.0, faithful=False),
                             [0.146, 0.607, 1, 1.046, 1.967, 3, 1.821, 0.439, 0], atol=2e-3)


def test_lds_smooth_bad_mode():
  with pytest.raises(ValueError, match="boundary mode"):
    weighting.lds_smooth(np.ones(5), mode="wrap")


# ----------------------------------------------------------------------------- per-sample weights


def reference_age_weights(labels, reweight, lds, kernel, ks, sigma, max_target=121, faithful=True):
  """Independent re-derivation of `_prepare_weights` with numpy + scipy."""
  bins = np.minimum(max_target - 1, labels.astype(np.int64))
  counts = np.bincount(bins, minlength=max_target)
  values = np.sqrt(counts) if reweight == "sqrt_inv" else np.clip(counts, 5, 1000)
  if lds:
    values = values if faithful else values.astype(np.float64)
    values = ndimage.convolve1d(values, scipy_lds_window(kernel, ks, sigma), mode="constant")
  inverse = (1.0 / values[bins]).astype(np.float32)
  return inverse * (labels.size / inverse.astype(np.float64).sum())


def read_agedb(shared_data_dir):
  frame = pd.read_csv(os.path.join(shared_data_dir, "agedb-dir", "agedb.csv"))
  return {split: frame.loc[frame["split"] == split, "age"].to_numpy(np.float32) for split in ("train", "val", "test")}


def read_stsb_scores(shared_data_dir, name):
  frame = pd.read_csv(os.path.join(shared_data_dir, "sts-b-dir", name), sep="\t", quoting=3)
  return frame["score"].to_numpy(np.float32)


@pytest.mark.parametrize("reweight,lds,kernel,ks,sigma", [
    ("inverse", False, "gaussian", 5, 2.0), ("sqrt_inv", False, "gaussian", 5, 2.0),
    ("inverse", True, "gaussian", 5, 2.0), ("sqrt_inv", True, "gaussian", 5, 2.0),
    ("inverse", True, "gaussian", 9, 1.0), ("sqrt_inv", True, "triang", 5, 2.0),
    ("inverse", True, "laplace", 5, 2.0), ("sqrt_inv", True, "laplace", 9, 1.0),
])
def test_prepare_weights_agedb_matches_reference(shared_data_dir, reweight, lds, kernel, ks, sigma):
  train = read_agedb(shared_data_dir)["train"]
  assert train.size == 12208
  weights = weighting.prepare_weights(train, reweight, lds, kernel, ks, sigma)
  assert weights.shape == train.shape and weights.dtype == np.float32
  np.testing.assert_allclose(weights, reference_age_weights(train, reweight, lds, kernel, ks, sigma), rtol=2e-6)
  assert weights.mean() == pytest.approx(1.0, rel=1e-6)


def test_prepare_weights_faithful_false_keeps_float_counts(shared_data_dir):
  train = read_agedb(shared_data_dir)["train"]
  floats = weighting.prepare_weights(train, "inverse", True, "gaussian", 5, 2.0, faithful=False)
  np.testing.assert_allclose(floats, reference_age_weights(train, "inverse", True, "gaussian", 5, 2.0, faithful=False),
                             rtol=2e-6)
  truncated = weighting.prepare_weights(train, "inverse", True, "gaussian", 5, 2.0)
  assert not np.allclose(floats, truncated, rtol=1e-4)


def test_prepare_weights_pools_labels_above_max_target():
  labels = np.array([0, 1, 1, 2, 7, 9, 200], np.float32)
  weights = weighting.prepare_weights(labels, "sqrt_inv", max_target=8)
  # bins: 0 1 1 2 7 7 7 -> counts 1, 2, 1, 3 ; w ∝ 1/√n, mean 1.
  raw = 1 / np.sqrt(np.array([1, 2, 2, 1, 3, 3, 3], np.float64))
  np.testing.assert_allclose(weights, raw * labels.size / raw.sum(), rtol=1e-6)


def test_prepare_weights_none_and_errors():
  labels = np.arange(10, dtype=np.float32)
  assert weighting.prepare_weights(labels) is None
  with pytest.raises(ValueError, match="LDS needs reweight"):
    weighting.prepare_weights(labels, "none", lds=True)
  with pytest.raises(ValueError, match="unknown reweight"):
    weighting.prepare_weights(labels, "inv")
  with pytest.raises(ValueError, match="NaN"):
    weighting.prepare_weights(np.array([1.0, np.inf]), "inverse")
  with pytest.raises(ValueError, match=r"\[N\] or \[N, 1\]"):
    weighting.prepare_weights(np.ones((4, 2)), "inverse")
  with pytest.raises(ValueError, match="sigma"):
    weighting.prepare_weights(labels, "inverse", lds=True, lds_sigma=0.0)


def test_prepare_weights_accepts_column_labels():
  labels = np.array([[1.0], [1.0], [2.0], [5.0]], np.float32)
  np.testing.assert_array_equal(weighting.prepare_weights(labels, "inverse", max_target=6),
                                weighting.prepare_weights(labels[:, 0], "inverse", max_target=6))


# ----------------------------------------------------------------------------- per-bin tables


def test_stsb_weights_match_spec_numbers(shared_data_dir):
  scores = read_stsb_scores(shared_data_dir, "train_new.tsv")
  assert scores.size == 5249
  binning = weighting.Binning(50, 0.0, 0.1)
  counts = np.histogram(scores, bins=50, range=(0.0, 5.0))[0]
  bins = binning.index(scores)
  window = scipy_lds_window("gaussian", 5, 2.0)
  cases = [  # (reweight, lds, v_b oracle, s, w_min, w_max) from DIR `agedb-dir/datasets.py` `_prepare_weights`
      ("inverse", True, ndimage.convolve1d(counts, window, mode="constant"), 503.698, 0.579, 2.583),
      ("sqrt_inv", True, ndimage.convolve1d(np.sqrt(counts), window, mode="constant"), 40.544, 0.718, 1.666),
      ("inverse", False, counts, 104.98, 0.245, 104.98),
  ]
  np.testing.assert_array_equal(cases[0][2][:12], [514, 501, 553, 196, 264, 196, 275, 195, 359, 297, 407, 331])
  for reweight, lds, values, scale, w_min, w_max in cases:
    table = weighting.bin_weight_table(scores, binning, reweight, lds=lds, inverse_clip=None)
    assert table.shape == (50,) and table.dtype == np.float32
    np.testing.assert_allclose(table * values, scale, rtol=2e-5)
    weights = table[bins]
    assert weights.min() == pytest.approx(w_min, abs=6e-4) and weights.max() == pytest.approx(w_max, abs=6e-4)
    assert weights.mean() == pytest.approx(1.0, rel=1e-6)


# DIR `nyud2-dir/loaddata.py` NYUD2 bucket weights (bucket_start 7, gaussian ks 5 σ 2, reflect padding).
NYUD2_CASES = [
    ("inverse", False, 3.7777e7, {0: 1.4615, 7: 1.4615, 21: 0.2585, 50: 1.7424, 99: 33.35}),
    ("inverse", True, 1.7531e8, {7: 1.2461, 21: 0.3042, 50: 1.6599, 99: 18.74}),
    ("sqrt_inv", False, None, {7: 1.4471, 99: 6.913}),
    ("sqrt_inv", True, None, {7: 1.3359, 99: 5.286}),
]


@pytest.mark.parametrize("reweight,lds,scale,expected", NYUD2_CASES)
def test_nyud2_bucket_weights_match_spec(reweight, lds, scale, expected):
  table = weighting.weight_table_from_counts(TRAIN_BUCKET_NUM, reweight, lds=lds, lds_mode="reflect",
                                             bucket_start=7, inverse_clip=None)
  assert table.shape == (100,) and table.dtype == np.float32
  for bucket, value in expected.items():
    assert table[bucket] == pytest.approx(value, rel=5e-4), bucket
  np.testing.assert_array_equal(table[:7], table[7])
  # Oracle re-derivation: v = (√)counts[7:], scipy-reflect LDS, buckets 0..6 take v[7].
  values = TRAIN_BUCKET_NUM[7:]
  values = np.sqrt(values) if reweight == "sqrt_inv" else values
  if lds:
    values = ndimage.convolve1d(values, scipy_lds_window("gaussian", 5, 2.0), mode="reflect")
  values = np.concatenate([np.repeat(values[:1], 7), values]).astype(np.float64)
  oracle_scale = TRAIN_BUCKET_NUM.sum() / np.sum(TRAIN_BUCKET_NUM / values)
  np.testing.assert_allclose(table, oracle_scale / values, rtol=1e-6)
  if scale is not None:
    assert oracle_scale == pytest.approx(scale, rel=1e-4)
  assert np.sum(TRAIN_BUCKET_NUM * table.astype(np.float64)) / TRAIN_BUCKET_NUM.sum() == pytest.approx(1.0, rel=1e-6)


def test_table_empty_bins_get_zero_weight_and_all_zero_counts_fail():
  table = weighting.weight_table_from_counts(np.array([4, 0, 1, 0]), "sqrt_inv")
  assert table[1] == 0 and table[3] == 0
  np.testing.assert_allclose(table[[0, 2]], np.array([0.5, 1.0]) * 5 / (4 * 0.5 + 1.0), rtol=1e-6)
  with pytest.raises(ValueError, match="all-zero"):
    weighting.weight_table_from_counts(np.zeros(5, np.int64), "inverse")
  with pytest.raises(ValueError, match="counts must be finite"):
    weighting.weight_table_from_counts(np.array([1.0, -2.0]), "inverse")
  with pytest.raises(ValueError, match="bucket_start"):
    weighting.weight_table_from_counts(np.array([1, 2]), "inverse", bucket_start=5)


def test_joint_table_is_separable_lds_of_the_2d_histogram():
  rng = np.random.default_rng(4)
  labels = np.stack([rng.gamma(2.0, 1.5, 3000), rng.normal(4, 1.5, 3000)], axis=1).astype(np.float32)
  joint = weighting.JointBinning((weighting.Binning(10), weighting.Binning(8)))
  rows = np.clip(np.floor(labels[:, 0]), 0, 9).astype(np.int64)
  cols = np.clip(np.floor(labels[:, 1]), 0, 7).astype(np.int64)
  counts = np.zeros((10, 8))
  np.add.at(counts, (rows, cols), 1)
  window = scipy_lds_window("gaussian", 5, 2.0)
  values = ndimage.convolve1d(ndimage.convolve1d(np.sqrt(counts), window, axis=0, mode="constant"), window, axis=1,
                              mode="constant")
  table = weighting.bin_weight_table(labels, joint, "sqrt_inv", lds=True)
  per_sample = 1.0 / values[rows, cols]
  np.testing.assert_allclose(table[joint.index(labels)], per_sample * labels.shape[0] / per_sample.sum(), rtol=1e-6)


# ----------------------------------------------------------------------------- DenseWeight


def reference_dense_weights(labels, alpha, eps, bandwidth, query):
  kde = stats.gaussian_kde(labels, bw_method=bandwidth / labels.std(ddof=1))
  density, query_density = kde(labels), kde(query)
  lo, hi = density.min(), density.max()
  weight = lambda d: np.maximum(1 - alpha * np.clip((d - lo) / (hi - lo), 0, 1), eps)
  return weight(query_density) / weight(density).mean()


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_dense_weights_match_scipy_kde(alpha):
  rng = np.random.default_rng(5)
  labels = np.concatenate([rng.normal(0, 1, 1500), rng.normal(4, 0.5, 100)])
  silverman = 1.06 * labels.std() * labels.size ** -0.2
  weights = weighting.dense_weights(labels, alpha=alpha)
  assert weights.dtype == np.float32 and weights.shape == labels.shape
  # Grid KDE vs exact KDE: p' agrees to ~2e-4, so w to ~α·2e-4 (absolute).
  np.testing.assert_allclose(weights, reference_dense_weights(labels, alpha, 1e-6, silverman, labels), rtol=1e-3,
                             atol=1e-3)
  assert weights.mean() == pytest.approx(1.0, rel=1e-5)
  query = np.linspace(-6, 8, 57)
  np.testing.assert_allclose(weighting.dense_weights(labels, alpha=alpha, query=query),
                             reference_dense_weights(labels, alpha, 1e-6, silverman, query), rtol=1e-3, atol=1e-3)


def test_dense_weights_bandwidth_alpha_zero_and_floor():
  rng = np.random.default_rng(6)
  labels = rng.exponential(2.0, 800)
  np.testing.assert_allclose(weighting.dense_weights(labels, alpha=0.0), 1.0, rtol=1e-6)
  np.testing.assert_allclose(weighting.dense_weights(labels[:, None], alpha=1.5, bandwidth=0.3),
                             reference_dense_weights(labels, 1.5, 1e-6, 0.3, labels), rtol=1e-3, atol=1e-3)
  # The rarest label has p' = 0 (w* = 1), the densest p' = 1 (w* = max(1 - 50, ε) = ε).
  floored = weighting.dense_weights(labels, alpha=50.0, eps=1e-3)
  assert floored.min() / floored.max() == pytest.approx(1e-3, rel=1e-5)


@pytest.mark.parametrize("kwargs,labels,match", [
    ({}, np.ones(10), "bandwidth"), ({"alpha": -1.0}, np.arange(10.0), "alpha"),
    ({"eps": 0.0}, np.arange(10.0), "eps"), ({}, np.array([1.0, np.nan, 2.0]), "NaN"),
    ({}, np.array([3.0]), "at least 2"), ({}, np.ones((5, 2)), "at least 2"),
])
def test_dense_weights_bad_input(kwargs, labels, match):
  with pytest.raises(ValueError, match=match):
    weighting.dense_weights(labels, **kwargs)


def test_dense_weights_narrow_labels_wide_bandwidth():
  # Bandwidth much wider than the label range: the KDE kernel spans almost the whole grid.
  labels = np.array([0.0, 0.01, 0.02, 0.5, 0.51, 1.0])
  np.testing.assert_allclose(weighting.dense_weights(labels, alpha=0.8, bandwidth=5.0),
                             reference_dense_weights(labels, 0.8, 1e-6, 5.0, labels), rtol=1e-3, atol=1e-3)


def test_prepare_weights_rejects_float_labels_without_bin_width():
  labels = np.random.default_rng(0).uniform(0.0, 10.0, 500).astype(np.float32)
  with pytest.raises(ValueError, match="not non-negative integers.*bin_width="):
    weighting.prepare_weights(labels, reweight="sqrt_inv", lds=True, lds_ks=5, lds_sigma=2)
  with pytest.raises(ValueError, match="bin_width="):
    weighting.prepare_weights(np.array([-2.0, 1.0, 3.0]), reweight="inverse")


def test_prepare_weights_bins_float_labels_by_bin_width():
  labels = np.random.default_rng(1).gamma(2.0, 1.5, 400).astype(np.float32) + 0.3
  weights = weighting.prepare_weights(labels, reweight="sqrt_inv", lds=True, lds_ks=5, lds_sigma=2, bin_width=0.5)
  # Oracle: 0.5-wide bins from floor(min / 0.5) * 0.5, sqrt counts smoothed with scipy's reflected
  # gaussian window (zero padding), inverse, normalised to mean 1.
  start = np.floor(labels.min() / 0.5) * 0.5
  bins = np.floor((labels.astype(np.float64) - start) / 0.5).astype(np.int64)
  counts = np.bincount(bins)
  smoothed = ndimage.convolve1d(np.sqrt(counts), scipy_lds_window("gaussian", 5, 2), mode="constant")
  inverse = 1.0 / smoothed[bins]
  np.testing.assert_allclose(weights, inverse * labels.size / inverse.sum(), rtol=1e-5)


def test_label_binning_covers_the_labels():
  binning = weighting.label_binning(np.array([0.31, 2.0, 4.99]), 0.1)
  assert (binning.start, binning.num_bins) == (pytest.approx(0.3), 47)  # [0.3, 5.0): 0.3 ... 4.9 → 47 bins
  assert binning.index(np.array([0.31, 4.99])).tolist() == [0, 46]
  with pytest.raises(ValueError, match="bin_width"):
    weighting.label_binning(np.array([1.0, 2.0]), 0.0)
