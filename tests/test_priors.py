"""GMM and bucket priors against sklearn, scipy re-derivations and values of the BalancedMSE code."""

import os

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from sklearn.mixture import GaussianMixture

from dirjax import priors, weighting
from test_weighting import TRAIN_BUCKET_NUM, scipy_lds_window

NYUD2_CENTERS = (np.linspace(0, 10, 101)[:-1] + 0.05).astype(np.float32)


# ----------------------------------------------------------------------------- GMM (GAI)


def test_fit_gmm_is_sklearn_with_reference_defaults():
  rng = np.random.default_rng(0)
  labels = np.concatenate([rng.normal(20, 3, 700), rng.normal(45, 8, 300), rng.normal(70, 2, 60)]).astype(np.float32)
  prior = priors.fit_gmm(labels, 3)
  expected = GaussianMixture(n_components=3, random_state=0).fit(labels[:, None])
  assert prior.means.dtype == np.float32 and prior.means.shape == (3, 1) and prior.covs.shape == (3, 1, 1)
  np.testing.assert_allclose(prior.means, expected.means_, rtol=1e-6)
  np.testing.assert_allclose(prior.covs, expected.covariances_, rtol=1e-6)
  np.testing.assert_allclose(prior.weights, expected.weights_, rtol=1e-6)
  # The data's generating mixture (closed-form oracle, loose: finite-sample noise).
  order = np.argsort(prior.means[:, 0])
  np.testing.assert_allclose(prior.means[order, 0], [20, 45, 70], atol=1.5)
  np.testing.assert_allclose(np.sqrt(prior.covs[order, 0, 0]), [3, 8, 2], rtol=0.2)
  np.testing.assert_allclose(prior.weights[order], np.array([700, 300, 60]) / 1060, atol=0.03)


def test_fit_gmm_multidimensional_and_sklearn_kwargs():
  rng = np.random.default_rng(1)
  labels = np.concatenate([rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], 400),
                           rng.multivariate_normal([5, 3], [[0.3, 0], [0, 2]], 200)])
  prior = priors.fit_gmm(labels, 2, seed=3, max_iter=200, n_init=2)
  expected = GaussianMixture(n_components=2, random_state=3, max_iter=200, n_init=2).fit(labels.astype(np.float32))
  assert prior.dim == 2 and prior.covs.shape == (2, 2, 2)
  np.testing.assert_allclose(prior.covs, expected.covariances_, rtol=1e-5)


def test_fit_gmm_nyud2_reference_values():
  # BalancedMSE `nyud2-dir/preprocess_gmm.py`: buckets 0-6 take bucket 7's count, centre 0.05 + 0.1 i repeated
  # count // 1e6 times (3,644 labels), K = 16, random_state 0; components sorted by mean.
  counts = TRAIN_BUCKET_NUM.copy()
  counts[:7] = counts[7]
  labels = np.repeat(NYUD2_CENTERS, counts // 1_000_000)
  assert labels.size == 3644
  prior = priors.fit_gmm(labels, 16)
  order = np.argsort(prior.means[:, 0])
  np.testing.assert_allclose(prior.means[order, 0], [
      0.2509, 0.6731, 1.0399, 1.4022, 1.8626, 2.2710, 2.6706, 3.0743, 3.5009, 3.9051, 4.3223, 4.8696, 5.4758,
      6.3057, 7.4174, 9.0686], atol=2e-4)
  np.testing.assert_allclose(prior.covs[order, 0, 0], [
      0.02344, 0.02205, 0.01183, 0.02535, 0.04068, 0.02658, 0.02376, 0.02549, 0.02354, 0.02614, 0.04224, 0.05027,
      0.08295, 0.15295, 0.29770, 0.31721], atol=2e-5)
  np.testing.assert_allclose(prior.weights[order], [
      0.0330, 0.0265, 0.0451, 0.1047, 0.1612, 0.1272, 0.1075, 0.1025, 0.0714, 0.0538, 0.0522, 0.0383, 0.0283,
      0.0242, 0.0162, 0.0082], atol=1e-4)


@pytest.mark.parametrize("labels,kwargs,match", [
    (np.array([1.0, np.nan, 3.0]), {}, "NaN"),
    (np.arange(3.0), {"n_components": 4}, "n_components"),
    (np.arange(30.0), {"covariance_type": "diag"}, "full"),
    (np.ones((2, 3, 4)), {}, r"\[N\] or \[N, d\]"),
])
def test_fit_gmm_bad_input(labels, kwargs, match):
  kwargs = {"n_components": 2} | kwargs
  with pytest.raises(ValueError, match=match):
    priors.fit_gmm(labels, **kwargs)


def test_gmm_prior_validation():
  with pytest.raises(ValueError, match="covs must have shape"):
    priors.GMMPrior(np.zeros((2, 1)), np.ones((2, 2, 2)), np.array([0.5, 0.5]))
  with pytest.raises(ValueError, match="sum to 1"):
    priors.GMMPrior(np.zeros((2, 1)), np.ones((2, 1, 1)), np.array([0.5, 0.6]))
  with pytest.raises(ValueError, match="weights must have shape"):
    priors.GMMPrior(np.zeros((2, 1)), np.ones((2, 1, 1)), np.array([1.0]))
  with pytest.raises(ValueError, match="NaN"):
    priors.GMMPrior(np.array([[np.nan], [0.0]]), np.ones((2, 1, 1)), np.array([0.5, 0.5]))
  with pytest.raises(ValueError, match="means must have 2"):
    priors.GMMPrior(np.zeros(2), np.ones((2, 1, 1)), np.array([0.5, 0.5]))


# ----------------------------------------------------------------------------- buckets (BNI)


def reference_imdb_bucket_prior(ages, max_target, lds=False, window=None, faithful=True):
  """Re-derivation of IMDBWIKI.get_bucket_info with numpy + scipy."""
  ages = ages.astype(np.int64)
  counts = np.bincount(ages[ages < max_target], minlength=max_target)
  if lds:
    counts = ndimage.convolve1d(counts if faithful else counts.astype(np.float64), window, mode="constant")
  keep = counts > 0
  return np.arange(max_target)[keep], counts[keep] / counts[keep].sum()


@pytest.mark.parametrize("lds,kernel,ks,sigma,faithful", [
    (False, "gaussian", 5, 2.0, True), (True, "gaussian", 5, 2.0, True), (True, "gaussian", 5, 1.0, True),
    (True, "triang", 9, 1.0, True), (True, "gaussian", 5, 1.0, False),
])
def test_bucket_prior_agedb_matches_reference(shared_data_dir, lds, kernel, ks, sigma, faithful):
  frame = pd.read_csv(os.path.join(shared_data_dir, "agedb-dir", "agedb.csv"))
  ages = frame.loc[frame["split"] == "train", "age"].to_numpy(np.float32)
  prior = priors.bucket_prior(ages, weighting.Binning(200), lds=lds, lds_kernel=kernel, lds_ks=ks, lds_sigma=sigma,
                              faithful=faithful)
  centers, weights = reference_imdb_bucket_prior(ages, 200, lds, scipy_lds_window(kernel, ks, sigma), faithful)
  np.testing.assert_array_equal(prior.centers, centers)
  np.testing.assert_allclose(prior.weights, weights, rtol=1e-6)
  if not lds:
    assert prior.centers.size == 100 and 2 not in prior.centers  # `agedb.csv`: age 2 is empty
  assert prior.weights.sum() == pytest.approx(1.0, rel=1e-6)


def test_bucket_prior_truncation_drops_neighbours_of_single_counts():
  # BalancedMSE IMDB-WIKI `get_bucket_info`: counts [0,0,1,0,0,3,0,0,0] -> [0,0,1,1,1,3,1,0,0] (ks 5, σ 1).
  ages = np.array([2, 5, 5, 5], np.float32)
  prior = priors.bucket_prior(ages, weighting.Binning(9), lds=True, lds_ks=5, lds_sigma=1.0)
  np.testing.assert_array_equal(prior.centers, [2, 3, 4, 5, 6])
  np.testing.assert_allclose(prior.weights, np.array([1, 1, 1, 3, 1]) / 7, rtol=1e-6)
  floats = priors.bucket_prior(ages, weighting.Binning(9), lds=True, lds_ks=5, lds_sigma=1.0, faithful=False)
  np.testing.assert_array_equal(floats.centers, [0, 1, 2, 3, 4, 5, 6, 7])


def test_bucket_prior_drops_out_of_range_labels_and_uses_mid_points_for_continuous_labels():
  labels = np.array([0.5, 0.25, 2.75, 3.0, 7.0, -1.0], np.float32)
  prior = priors.bucket_prior(labels, weighting.Binning(6, 0.0, 0.5))
  # bins: 0.5 -> 1, 0.25 -> 0, 2.75 -> 5; 3.0, 7.0 and -1.0 fall outside [0, 3) and are dropped.
  np.testing.assert_allclose(prior.centers, [0.25, 0.75, 2.75])
  np.testing.assert_allclose(prior.weights, [1 / 3, 1 / 3, 1 / 3], rtol=1e-6)
  on_edges = priors.bucket_prior(np.array([0.5, 0.0, 2.5, 0.5]), weighting.Binning(6, 0.0, 0.5))
  np.testing.assert_allclose(on_edges.centers, [0.0, 0.5, 2.5])  # labels on the left edges: kept
  np.testing.assert_allclose(on_edges.weights, [1 / 4, 1 / 2, 1 / 4], rtol=1e-6)
  with pytest.raises(ValueError, match="empty bucket prior"):
    priors.bucket_prior(np.array([10.0, 12.0]), weighting.Binning(5))


def test_bucket_prior_joint_binning_centers():
  labels = np.array([[0.2, 1.5], [0.7, 1.2], [1.1, 0.1]])
  joint = weighting.JointBinning((weighting.Binning(2), weighting.Binning(2)))
  prior = priors.bucket_prior(labels, joint)
  np.testing.assert_allclose(prior.centers, [[0.5, 1.5], [1.5, 0.5]])
  np.testing.assert_allclose(prior.weights, [2 / 3, 1 / 3], rtol=1e-6)
  integer = priors.bucket_prior(np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]), joint)
  np.testing.assert_allclose(integer.centers, [[0, 1], [1, 0]])
  assert prior.dim == 2


def test_bucket_prior_from_counts_nyud2_spec_values():
  prior = priors.bucket_prior_from_counts(NYUD2_CENTERS, TRAIN_BUCKET_NUM, bucket_start=7)
  # BalancedMSE NYUD2 `get_bucket_info`: buckets 0-7 0.006997, 8 0.006695, 9 0.014434, max 0.039557 at 21,
  # min 3.07e-4 at 99, normalising sum 3,694,227,493.
  np.testing.assert_allclose(prior.weights[:8], 0.006997, atol=5e-7)
  assert prior.weights[8] == pytest.approx(0.006695, abs=1e-6)
  assert prior.weights[9] == pytest.approx(0.014434, abs=1e-6)
  assert np.argmax(prior.weights) == 21 and prior.weights[21] == pytest.approx(0.039557, abs=1e-6)
  assert np.argmin(prior.weights) == 99 and prior.weights[99] == pytest.approx(3.07e-4, rel=2e-3)
  assert prior.weights[0] == pytest.approx(25848691 / 3694227493, rel=1e-6)
  smoothed = priors.bucket_prior_from_counts(NYUD2_CENTERS, TRAIN_BUCKET_NUM, lds=True, bucket_start=7)
  np.testing.assert_allclose(smoothed.weights[:8], 0.00819, atol=5e-6)
  assert smoothed.centers.shape == (100,)


@pytest.mark.parametrize("sqrt", [False, True])
def test_bucket_prior_from_counts_matches_scipy_rederivation(sqrt):
  values = TRAIN_BUCKET_NUM[7:]
  values = np.sqrt(values) if sqrt else values
  values = ndimage.convolve1d(values, scipy_lds_window("gaussian", 5, 2.0), mode="reflect")
  values = np.concatenate([np.repeat(values[:1], 7), values]).astype(np.float64)
  prior = priors.bucket_prior_from_counts(NYUD2_CENTERS, TRAIN_BUCKET_NUM, lds=True, bucket_start=7, sqrt=sqrt)
  np.testing.assert_allclose(prior.weights, values / values.sum(), rtol=1e-6)


def test_bucket_prior_validation():
  with pytest.raises(ValueError, match="same M buckets"):
    priors.bucket_prior_from_counts(np.arange(3.0), np.ones(4))
  with pytest.raises(ValueError, match="empty bucket prior"):
    priors.bucket_prior_from_counts(np.arange(3.0), np.zeros(3))
  with pytest.raises(ValueError, match="empty bucket prior"):
    priors.BucketPrior(np.zeros(0), np.zeros(0))
  with pytest.raises(ValueError, match="sum to 1"):
    priors.BucketPrior(np.arange(3.0), np.array([0.2, 0.2, 0.2]))
  with pytest.raises(ValueError, match="weights must have shape"):
    priors.BucketPrior(np.arange(3.0), np.array([0.5, 0.5]))


# ----------------------------------------------------------------------------- save / load


def test_save_load_round_trip(tmp_path):
  gmm = priors.GMMPrior(np.array([[1.0], [3.0]]), np.array([[[0.5]], [[2.0]]]), np.array([0.25, 0.75]))
  buckets = priors.BucketPrior(np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]), np.array([0.2, 0.3, 0.5]))
  for prior, kind, dim in ((gmm, "gmm", 1), (buckets, "bucket", 2)):
    path = tmp_path / f"{kind}.npz"
    priors.save_prior(path, prior)
    loaded = priors.load_prior(path, expected_kind=kind, expected_dim=dim)
    assert type(loaded) is type(prior)
    for field in ("means", "covs", "centers", "weights"):
      if hasattr(prior, field):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(prior, field))
        assert getattr(loaded, field).dtype == np.float32


def test_load_prior_errors(tmp_path):
  path = tmp_path / "prior.npz"
  priors.save_prior(path, priors.BucketPrior(np.arange(3.0), np.full(3, 1 / 3)))
  with pytest.raises(ValueError, match="'bucket' prior but a 'gmm' prior"):
    priors.load_prior(path, expected_kind="gmm")
  with pytest.raises(ValueError, match="1-d labels but labels are 2-d"):
    priors.load_prior(path, expected_dim=2)
  with pytest.raises(FileNotFoundError, match="not found"):
    priors.load_prior(tmp_path / "missing.npz")
  corrupt = tmp_path / "corrupt.npz"
  corrupt.write_bytes(b"PK\x03\x04 definitely not a zip archive")
  with pytest.raises(ValueError, match="not a readable prior"):
    priors.load_prior(corrupt)
  single = tmp_path / "single.npy"
  np.save(single, np.ones(3))
  with pytest.raises(ValueError, match="not a readable prior"):
    priors.load_prior(single)
  foreign = tmp_path / "foreign.npz"
  np.savez(foreign, weights=np.ones(3) / 3)
  with pytest.raises(ValueError, match="not a dirjax prior"):
    priors.load_prior(foreign)
  with pytest.raises(TypeError, match="GMMPrior or BucketPrior"):
    priors.save_prior(tmp_path / "x.npz", {"weights": np.ones(1)})
