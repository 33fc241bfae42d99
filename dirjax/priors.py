"""Training-label priors for Balanced MSE (Ren et al., CVPR 2022): a GMM for GAI, buckets for BNI.

Both are computed once from the training labels (or NYUD2's per-bucket pixel counts) on the host
and passed to `losses.gai_loss` / `losses.bni_loss` as float32 arrays. No image is ever read.
"""

from __future__ import annotations

import dataclasses
import os
import time
import zipfile

import numpy as np
from absl import logging

from dirjax import weighting, writers

_FORMAT_VERSION = 1


def _float32(name: str, value, ndim: int) -> np.ndarray:
  array = np.asarray(value, dtype=np.float32)
  if array.ndim != ndim:
    raise ValueError(f"{name} must have {ndim} dimension(s), got shape {array.shape}")
  if not np.all(np.isfinite(array)):
    raise ValueError(f"{name} contains NaN or inf")
  return array


def _check_normalised(weights: np.ndarray, num: int, what: str) -> None:
  if weights.shape != (num,):
    raise ValueError(f"{what} weights must have shape ({num},), got {weights.shape}")
  if num == 0:
    raise ValueError(f"empty {what} prior: no component/bucket left")
  if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, atol=1e-4):
    raise ValueError(f"{what} weights must be >= 0 and sum to 1, got sum {weights.sum()}")


@dataclasses.dataclass(frozen=True)
class GMMPrior:
  """Gaussian mixture p(y) = Σ_k π_k N(y; μ_k, Σ_k): means [K, d], covs [K, d, d], weights [K]."""
  means: np.ndarray
  covs: np.ndarray
  weights: np.ndarray

  def __post_init__(self):
    means = _float32("means", self.means, 2)
    covs = _float32("covs", self.covs, 3)
    weights = _float32("weights", self.weights, 1)
    num, dim = means.shape
    if covs.shape != (num, dim, dim):
      raise ValueError(f"covs must have shape ({num}, {dim}, {dim}) to match means {means.shape}, got {covs.shape}")
    _check_normalised(weights, num, "GMM")
    if not np.allclose(covs, np.swapaxes(covs, 1, 2), rtol=1e-5, atol=1e-8):
      raise ValueError("covs must be symmetric matrices")
    smallest = np.linalg.eigvalsh(covs.astype(np.float64)).min(axis=-1)
    if np.any(smallest <= 0):
      k = int(np.argmin(smallest))
      raise ValueError(f"covs must be positive definite (variances > 0); component {k} has eigenvalue "
                       f"{smallest[k]:.3g}")
    for name, value in (("means", means), ("covs", covs), ("weights", weights)):
      object.__setattr__(self, name, value)

  @property
  def dim(self) -> int:
    return self.means.shape[1]


@dataclasses.dataclass(frozen=True)
class BucketPrior:
  """Histogram prior for BNI: bucket centres [M] (or [M, d]) and probabilities [M]."""
  centers: np.ndarray
  weights: np.ndarray

  def __post_init__(self):
    centers = np.asarray(self.centers)
    centers = _float32("centers", centers, 2 if centers.ndim == 2 else 1)
    weights = _float32("weights", self.weights, 1)
    _check_normalised(weights, centers.shape[0], "bucket")
    object.__setattr__(self, "centers", centers)
    object.__setattr__(self, "weights", weights)

  @property
  def dim(self) -> int:
    return 1 if self.centers.ndim == 1 else self.centers.shape[1]


def fit_gmm(labels, n_components: int, seed: int = 0, **sklearn_kwargs) -> GMMPrior:
  """GAI prior: sklearn `GaussianMixture(n_components, random_state=seed)` on the float32 labels,
  other arguments at sklearn's defaults as the reference `preprocess_gmm.py` (full covariances,
  k-means init, tol 1e-3, reg_covar 1e-6, 100 iterations). K = 8 for IMDB-WIKI, 16 for NYUD2.
  The result depends (slightly) on the label order through the k-means initialisation."""
  if sklearn_kwargs.get("covariance_type", "full") != "full":
    raise ValueError("GAI needs full covariance matrices: covariance_type must be 'full'")
  labels = weighting.finite_array(labels, "labels").astype(np.float32)
  labels = labels[:, None] if labels.ndim == 1 else labels
  if labels.ndim != 2:
    raise ValueError(f"labels must be [N] or [N, d], got shape {labels.shape}")
  if not 1 <= n_components <= labels.shape[0]:
    raise ValueError(f"n_components must be in [1, N={labels.shape[0]}], got {n_components}")
  from sklearn.mixture import GaussianMixture  # imported here: scikit-learn takes ~1 s to import

  logging.info("fitting the %d-component GMM label prior on %d labels ...", n_components, labels.shape[0])
  start = time.perf_counter()
  gmm = GaussianMixture(n_components=n_components, random_state=seed, **sklearn_kwargs).fit(labels)
  logging.info("GMM label prior fitted in %.1f s", time.perf_counter() - start)
  return GMMPrior(gmm.means_, gmm.covariances_, gmm.weights_)


def bucket_prior(labels, binning: weighting.Binning | weighting.JointBinning, lds: bool = False,
                 lds_kernel: str = "gaussian", lds_ks: int = 5, lds_sigma: float = 2.0,
                 faithful: bool = True) -> BucketPrior:
  """BNI prior from training labels (BalancedMSE `imdb-wiki-dir/datasets.py` `get_bucket_info`).

  Histogram of the labels in `binning` (labels outside the bin range are dropped, not pooled),
  optional LDS of the raw counts with zero padding (faithful: truncated to integers, docs/deviations.md R4), buckets
  with zero (smoothed) count dropped, weights = counts / total. Centres: the bins' left edges when
  every label sits on one (integer ages in `Binning(200)`: the ages themselves, no +0.5, as the
  reference), else the bins' mid-points (continuous labels: a left edge would shift the prior by
  half a bin; the reference has no BNI for them).
  """
  labels = weighting.host_labels(labels, binning)
  labels = labels[binning.in_range(labels)]
  counts = weighting.label_histogram(labels, binning)
  on_edges = np.array_equal(binning.starts()[binning.index(labels)], labels.astype(np.float32))
  if lds:
    counts = weighting.lds_smooth(counts, lds_kernel, lds_ks, lds_sigma, mode="constant", faithful=faithful)
  counts = counts.ravel()
  keep = counts > 0
  if not np.any(keep):
    raise ValueError("empty bucket prior: no training label falls inside the binning range")
  centers = binning.starts() if on_edges else binning.centers()
  return BucketPrior(centers[keep], counts[keep] / counts[keep].sum())


def bucket_prior_from_counts(centers, counts, lds: bool = False, lds_kernel: str = "gaussian", lds_ks: int = 5,
                             lds_sigma: float = 2.0, lds_mode: str = "reflect", bucket_start: int = 0,
                             sqrt: bool = False, faithful: bool = True) -> BucketPrior:
  """BNI prior from per-bucket counts (BalancedMSE `nyud2-dir/loaddata.py` `get_bucket_info`).

  Buckets below `bucket_start` take bucket_start's value; `sqrt` square-roots the counts (the
  reference does this under `--reweight sqrt_inv`); LDS smooths buckets >= bucket_start with
  scipy-reflect padding (integer truncation when faithful and not √). All buckets are kept.
  NYUD2: centres `Binning(100, 0, 0.1).centers()`, counts `TRAIN_BUCKET_NUM`, bucket_start 7.
  """
  centers = np.asarray(centers)
  counts = np.asarray(counts)
  if counts.ndim != 1 or centers.shape[:1] != counts.shape:
    raise ValueError(f"centers {centers.shape} and counts {counts.shape} must describe the same M buckets")
  values = weighting.effective_counts(counts, sqrt=sqrt, lds=lds, lds_kernel=lds_kernel, lds_ks=lds_ks,
                                      lds_sigma=lds_sigma, lds_mode=lds_mode, bucket_start=bucket_start,
                                      faithful=faithful).astype(np.float64)
  if not values.sum() > 0:
    raise ValueError("empty bucket prior: all bucket counts are zero")
  return BucketPrior(centers, values / values.sum())


def save_prior(path: str | os.PathLike, prior: GMMPrior | BucketPrior) -> None:
  """Write a prior to an uncompressed `.npz` (no pickle) with its kind and format version."""
  if isinstance(prior, GMMPrior):
    arrays = {"kind": np.array("gmm"), "means": prior.means, "covs": prior.covs, "weights": prior.weights}
  elif isinstance(prior, BucketPrior):
    arrays = {"kind": np.array("bucket"), "centers": prior.centers, "weights": prior.weights}
  else:
    raise TypeError(f"expected a GMMPrior or BucketPrior, got {type(prior).__name__}")
  writers.save_npz(path, format_version=np.array(_FORMAT_VERSION), **arrays)


def load_prior(path: str | os.PathLike, expected_kind: str | None = None,
               expected_dim: int | None = None) -> GMMPrior | BucketPrior:
  """Read a prior written by `save_prior`; `expected_kind` ("gmm" / "bucket") and `expected_dim`
  (label dimension d) turn a mismatch into a clear ValueError instead of a wrong loss."""
  if expected_kind not in (None, "gmm", "bucket"):
    raise ValueError(f"expected_kind must be None, 'gmm' or 'bucket', got {expected_kind!r}")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"prior file not found: {path}")
  try:
    with open(path, "rb") as f:
      data = np.load(f, allow_pickle=False)
      if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError("a single array, not an .npz archive")
      with data:
        arrays = {key: data[key] for key in data.files}
  except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
    raise ValueError(f"{path} is not a readable prior .npz file: {error}") from error
  kind = str(arrays.get("kind", ""))
  fields = {"gmm": ("means", "covs", "weights"), "bucket": ("centers", "weights")}.get(kind)
  if fields is None or int(arrays.get("format_version", -1)) != _FORMAT_VERSION or any(
      key not in arrays for key in fields):
    raise ValueError(f"{path} is not a dirjax prior file (kind={kind!r}, keys={sorted(arrays)})")
  try:
    prior = (GMMPrior if kind == "gmm" else BucketPrior)(**{key: arrays[key] for key in fields})
  except ValueError as error:
    raise ValueError(f"{path} holds an invalid {kind} prior: {error}; re-create it with save_prior") from None
  if expected_kind is not None and kind != expected_kind:
    raise ValueError(f"{path} holds a {kind!r} prior but a {expected_kind!r} prior was expected")
  if expected_dim is not None and prior.dim != expected_dim:
    raise ValueError(f"{path} holds a prior over {prior.dim}-d labels but labels are {expected_dim}-d")
  return prior


def from_config(kind: str, loss_config, config, bundle) -> GMMPrior | BucketPrior:
  """The prior `loss_config.prior` names for a loss that needs a `kind` ("gmm" / "bucket") prior.

  `"gmm"`: `fit_gmm` on `bundle.train_labels` with `loss_config.gmm_components` and `config.seed`;
  `"buckets"`: `bucket_prior_from_counts` of `bundle.train_bin_counts` when the data has them
  (NYUD2) else `bucket_prior` of the training labels, both LDS-smoothed as `config.reweight` says
  (the Balanced-MSE reference shares its `--lds` flags); any other value: a `save_prior` file.
  """
  fitted = {"gmm": "gmm", "bucket": "buckets"}[kind]
  source = loss_config.prior
  if source != fitted:
    if not os.path.isfile(source):
      raise ValueError(f"this loss's {kind} prior needs loss.prior = {fitted!r} (fitted on the training labels) "
                       f"or the path of a saved prior file; got {source!r} (no such file)")
    return load_prior(source, expected_kind=kind)
  if kind == "gmm":
    return fit_gmm(bundle.train_labels, loss_config.gmm_components, seed=config.seed)
  rw = config.reweight
  lds = dict(lds=rw.lds, lds_kernel=rw.kernel, lds_ks=rw.ks, lds_sigma=rw.sigma, faithful=rw.faithful)
  if bundle.train_bin_counts is not None:
    return bucket_prior_from_counts(bundle.binning.centers(), bundle.train_bin_counts, lds_mode=rw.lds_mode,
                                    bucket_start=bundle.first_counted_bin, **lds)
  return bucket_prior(bundle.train_labels, bundle.binning, **lds)
