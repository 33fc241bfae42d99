"""Label-distribution re-weighting: kernel windows, label bins, INV / SQINV / LDS and DenseWeight.

LDS (Yang et al., ICML 2021, Eq. 2) smooths the empirical label histogram with a symmetric kernel
and weights each sample by the inverse of the smoothed ("effective") density of its label bin.
Everything here runs once on the host at set-up (numpy); the trainer then looks weights up on
device with `table[binning.index(y)]`, per sample or per pixel.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

KERNELS = ("gaussian", "triang", "laplace")
REWEIGHTS = ("none", "inverse", "sqrt_inv")
# `config.reweight.method`: the per-bin tables above, DenseWeight, or the synthetic benchmark's
# inverse of the true training density.
METHODS = ("none", "inverse", "sqrt_inv", "dense", "true_inverse")
# scipy.ndimage boundary names -> numpy.pad modes ('reflect' repeats the edge sample).
LDS_MODES = {"constant": "constant", "reflect": "symmetric", "mirror": "reflect"}


def _check_window_args(kernel: str, ks: int, sigma: float) -> None:
  if kernel not in KERNELS:
    raise ValueError(f"unknown kernel {kernel!r}; valid kernels: {KERNELS}")
  if isinstance(ks, bool) or not isinstance(ks, (int, np.integer)) or ks <= 0 or ks % 2 == 0:
    raise ValueError(f"kernel size ks must be a positive odd integer, got {ks!r}")
  if kernel != "triang" and not (math.isfinite(sigma) and sigma > 0):
    raise ValueError(f"kernel sigma must be finite and > 0 for the {kernel} kernel, got {sigma!r}")


def _symmetric_correlate(padded: np.ndarray, window: np.ndarray) -> np.ndarray:
  """Correlate the last axis of `padded` (already padded by len(window)//2 per side) with a
  symmetric window, summing like scipy.ndimage's symmetric branch: centre tap first, then the
  pairs x[i-j] + x[i+j] from the outermost j inwards."""
  half = window.size // 2
  n = padded.shape[-1] - 2 * half
  out = window[half] * padded[..., half:half + n]
  for j in range(half, 0, -1):
    out = out + (padded[..., half - j:half - j + n] + padded[..., half + j:half + j + n]) * window[half - j]
  return out


def kernel_window(kernel: str, ks: int, sigma: float, normalize: str = "max") -> np.ndarray:
  """Symmetric smoothing window of odd length `ks` (DIR reference `get_lds_kernel_window`).

  * gaussian: scipy's `gaussian_filter1d` (reflect boundary, truncate 4) applied to a length-`ks`
    delta, re-derived here without scipy: radius r = int(4σ + 0.5), normalised weights
    exp(-j²/2σ²), the delta padded symmetrically (edge repeated) by r. Not a sampled Gaussian:
    the mass reflected at the ends flattens it (e.g. ks=5, σ=2 → 0.858 0.946 1 0.946 0.858).
  * triang: scipy.signal.windows.triang(ks) = 2 (h + 1 - |x|) / (ks + 1); σ is ignored.
  * laplace: exp(-|x| / σ) / (2σ) for x = -h..h.

  normalize="max" gives the LDS window (peak 1), "sum" the FDS window (sum 1). Float64, computed
  with scipy's formulas and summation order so that integer truncation downstream (docs/deviations.md R4) flips at
  exactly the same values as in the reference.
  """
  _check_window_args(kernel, ks, sigma)
  if normalize not in ("max", "sum"):
    raise ValueError(f"normalize must be 'max' (LDS) or 'sum' (FDS), got {normalize!r}")
  half = (ks - 1) // 2
  offsets = np.arange(-half, half + 1, dtype=np.float64)
  if kernel == "gaussian":
    radius = int(4.0 * sigma + 0.5)
    taps = np.exp(-0.5 / (sigma * sigma) * np.arange(-radius, radius + 1) ** 2)
    delta = np.zeros(ks)
    delta[half] = 1.0
    window = _symmetric_correlate(np.pad(delta, radius, mode="symmetric"), taps / taps.sum())
  elif kernel == "triang":
    window = 2.0 * (half + 1 - np.abs(offsets)) / (ks + 1.0)
  else:
    window = np.exp(-np.abs(offsets) / sigma) / (2.0 * sigma)
  return window / (window.max() if normalize == "max" else window.sum())


@dataclasses.dataclass(frozen=True)
class Binning:
  """Uniform label bins: b(y) = clip(floor((y - start) * (1 / bin_width)), 0, num_bins - 1).

  Evaluated in float32 like the references (STS-B float32 histogram edges, NYUD2
  `int(float32(d) * 10)`; docs/deviations.md R16): Binning(121) = integer ages with ages > 120 pooled into bin 120,
  Binning(50, 0, 0.1) = STS-B (5.0 → 49), Binning(100, 0, 0.1) = NYUD2 depth buckets.
  `index` is element-wise and works on numpy arrays (host, NaN/inf rejected) and jax arrays
  (inside jit, unchecked: validate labels when the data are loaded).
  """
  num_bins: int
  start: float = 0.0
  bin_width: float = 1.0

  def __post_init__(self):
    if isinstance(self.num_bins, bool) or not isinstance(self.num_bins, (int, np.integer)) or self.num_bins < 1:
      raise ValueError(f"num_bins must be a positive integer, got {self.num_bins!r}")
    if not (math.isfinite(self.bin_width) and self.bin_width > 0):
      raise ValueError(f"bin_width must be finite and > 0, got {self.bin_width!r}")
    if not math.isfinite(self.start):
      raise ValueError(f"start must be finite, got {self.start!r}")

  @property
  def shape(self) -> tuple[int, ...]:
    return (self.num_bins,)

  def _scaled(self, labels, xp):
    labels = xp.asarray(labels).astype(xp.float32)
    return xp.floor((labels - xp.float32(self.start)) * xp.float32(1.0 / self.bin_width))

  def index(self, labels):
    """Bin index (int32, same shape as `labels`); numpy in → numpy out, jax in → jax out."""
    if isinstance(labels, jax.Array):
      return jnp.clip(self._scaled(labels, jnp), 0, self.num_bins - 1).astype(jnp.int32)
    labels = finite_array(labels, "labels")
    return np.clip(self._scaled(labels, np), 0, self.num_bins - 1).astype(np.int32)

  def in_range(self, labels) -> np.ndarray:
    """Host-side mask of the labels inside [start, start + num_bins * bin_width) (no clipping)."""
    scaled = self._scaled(finite_array(labels, "labels"), np)
    return (scaled >= 0) & (scaled < self.num_bins)

  def starts(self) -> np.ndarray:
    """Left edge of each bin, float32 [num_bins]."""
    return (self.start + np.arange(self.num_bins) * self.bin_width).astype(np.float32)

  def centers(self) -> np.ndarray:
    """Mid-point of each bin, float32 [num_bins] (NYUD2: 0.05 ... 9.95)."""
    return (self.start + (np.arange(self.num_bins) + 0.5) * self.bin_width).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class JointBinning:
  """Bins for d-dimensional labels [..., d]: one `Binning` per dimension, row-major joint index.

  `index(labels[..., d]) -> [...]` = ravel_multi_index of the per-dimension indices, so a
  per-bin weight table of length prod(num_bins) is looked up exactly as in 1-D. LDS on a joint
  histogram smooths along every dimension in turn (separable kernel; not in the references).
  """
  dims: tuple[Binning, ...]

  def __post_init__(self):
    if not self.dims or not all(isinstance(b, Binning) for b in self.dims):
      raise ValueError("JointBinning needs a non-empty tuple of Binning, one per label dimension")
    object.__setattr__(self, "dims", tuple(self.dims))

  @property
  def shape(self) -> tuple[int, ...]:
    return tuple(b.num_bins for b in self.dims)

  @property
  def num_bins(self) -> int:
    return int(np.prod(self.shape))

  def _check(self, labels) -> None:
    if labels.ndim < 1 or labels.shape[-1] != len(self.dims):
      raise ValueError(f"labels must have a last axis of size {len(self.dims)}, got shape {labels.shape}")

  def index(self, labels):
    """Joint bin index, int32 of shape labels.shape[:-1]."""
    self._check(labels)
    strides = np.cumprod((self.shape + (1,))[:0:-1])[::-1]
    xp = jnp if isinstance(labels, jax.Array) else np
    return sum(b.index(labels[..., k]) * int(strides[k]) for k, b in enumerate(self.dims)).astype(xp.int32)

  def in_range(self, labels) -> np.ndarray:
    labels = finite_array(labels, "labels")
    self._check(labels)
    return np.all([b.in_range(labels[..., k]) for k, b in enumerate(self.dims)], axis=0)

  def starts(self) -> np.ndarray:
    """Left corner of each joint bin, float32 [num_bins, d] (row-major order)."""
    grids = np.meshgrid(*(b.starts() for b in self.dims), indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=-1)

  def centers(self) -> np.ndarray:
    """Centre of each joint bin, float32 [num_bins, d] (row-major order)."""
    grids = np.meshgrid(*(b.centers() for b in self.dims), indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=-1)


def finite_array(values, name: str) -> np.ndarray:
  """`np.asarray(values)`, rejecting non-numeric dtypes and NaN / inf with an error naming `name`."""
  values = np.asarray(values)
  if values.dtype.kind not in "biuf":
    raise TypeError(f"{name} must be numeric, got dtype {values.dtype}")
  if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
    raise ValueError(f"{name} contains NaN or inf values")
  return values


def host_labels(labels, binning: Binning | JointBinning) -> np.ndarray:
  """Checked host copy of training labels: [N] for a `Binning` ([N] or [N, 1] accepted),
  [N, d] for a `JointBinning`."""
  labels = finite_array(labels, "labels")
  if isinstance(binning, JointBinning):
    if labels.ndim != 2:
      raise ValueError(f"labels for a JointBinning must be [N, d], got shape {labels.shape}")
    binning._check(labels)
    return labels
  if labels.ndim == 2 and labels.shape[1] == 1:
    return labels[:, 0]
  if labels.ndim != 1:
    raise ValueError(f"labels must be [N] or [N, 1] for a 1-D Binning (use JointBinning for [N, d]), "
                     f"got shape {labels.shape}")
  return labels


def label_histogram(labels, binning: Binning | JointBinning) -> np.ndarray:
  """Training count per bin, int64 of shape `binning.shape` (out-of-range labels are clipped)."""
  counts = np.bincount(binning.index(host_labels(labels, binning)).ravel(), minlength=binning.num_bins)
  return counts.astype(np.int64).reshape(binning.shape)


def lds_smooth(values, kernel: str = "gaussian", ks: int = 5, sigma: float = 2.0, mode: str = "constant",
               faithful: bool = True) -> np.ndarray:
  """Convolve `values` with the LDS window along every axis (scipy `convolve1d` semantics).

  mode: scipy boundary name, "constant" (zero padding: age, STS-B, BNI), "reflect" (edge
  repeated: NYUD2) or "mirror" (edge not repeated). faithful=True keeps scipy's output dtype, so
  integer inputs (INV counts) are truncated toward zero after each pass (docs/deviations.md R4);
  faithful=False returns float64.
  """
  if mode not in LDS_MODES:
    raise ValueError(f"unknown LDS boundary mode {mode!r}; valid modes: {tuple(LDS_MODES)}")
  window = kernel_window(kernel, ks, sigma, normalize="max")
  values = np.asarray(values)
  integer = values.dtype.kind in "biu"
  out = values.astype(np.float64)
  half = (ks - 1) // 2
  for axis in range(out.ndim):
    moved = np.moveaxis(out, axis, -1)
    widths = [(0, 0)] * (moved.ndim - 1) + [(half, half)]
    moved = _symmetric_correlate(np.pad(moved, widths, mode=LDS_MODES[mode]), window)
    if faithful and integer:
      moved = np.trunc(moved)
    out = np.moveaxis(moved, -1, axis)
  return out.astype(np.int64) if faithful and integer else out


def effective_counts(counts, *, sqrt: bool = False, clip: tuple[float, float] | None = None, lds: bool = False,
                     lds_kernel: str = "gaussian", lds_ks: int = 5, lds_sigma: float = 2.0,
                     lds_mode: str = "constant", bucket_start: int = 0, faithful: bool = True) -> np.ndarray:
  """The per-bin statistic v_b that INV/SQINV/LDS invert (`_prepare_weights` in `agedb-dir/datasets.py`).

  v = √counts (`sqrt`, SQINV; LDS then smooths √n, docs/deviations.md R2) or clip(counts, *clip) (INV age rule,
  R3); with `lds` it is smoothed by `lds_smooth` (integer truncation when faithful and v is
  integer, R4). NYUD2 rule (1-D only): only bins >= `bucket_start` are transformed/smoothed and
  the bins below take the value of bin `bucket_start`.
  """
  counts = np.asarray(counts)
  if counts.dtype.kind not in "biuf" or counts.size == 0:
    raise ValueError(f"counts must be a non-empty numeric array, got {counts.dtype} of shape {counts.shape}")
  if not np.all(np.isfinite(counts)) or np.any(counts < 0):
    raise ValueError("counts must be finite and >= 0")
  if not 0 <= bucket_start < counts.shape[0] or (bucket_start and counts.ndim != 1):
    raise ValueError(f"bucket_start={bucket_start} must index a bin of a 1-D counts array of length {counts.shape[0]}")
  values = counts[bucket_start:]
  if sqrt:
    values = np.sqrt(values)
  elif clip is not None:
    values = np.clip(values, *clip)
  if lds:
    values = lds_smooth(values, lds_kernel, lds_ks, lds_sigma, mode=lds_mode, faithful=faithful)
  return np.concatenate([np.repeat(values[:1], bucket_start, axis=0), values])


def _check_reweight(reweight: str, lds: bool) -> None:
  if reweight not in REWEIGHTS:
    raise ValueError(f"unknown reweight {reweight!r}; valid values: {REWEIGHTS}")
  if lds and reweight == "none":
    raise ValueError("LDS needs reweight='inverse' or 'sqrt_inv' (as the reference asserts), got 'none'")


def weight_table_from_counts(counts, reweight: str, lds: bool = False, lds_kernel: str = "gaussian",
                             lds_ks: int = 5, lds_sigma: float = 2.0, lds_mode: str = "constant",
                             bucket_start: int = 0, faithful: bool = True,
                             inverse_clip: tuple[float, float] | None = None) -> np.ndarray | None:
  """Per-bin weights w_b = s / v_b from training counts n_b, normalised so that the
  count-weighted mean weight is 1: s = Σ n_b / Σ n_b / v_b (`_prepare_weights` in `agedb-dir/datasets.py`).

  With NYUD2's pixel counts (`TRAIN_BUCKET_NUM`), reweight in {inverse, sqrt_inv},
  lds_mode="reflect", bucket_start=7 and no clip this is `_get_bucket_weights`. Bins without
  training mass whose v_b is 0 get weight 0 (no training sample looks them up). float32, or None
  for reweight="none".
  """
  _check_reweight(reweight, lds)
  if reweight == "none":
    return None
  counts = np.asarray(counts)
  values = effective_counts(counts, sqrt=reweight == "sqrt_inv", clip=inverse_clip if reweight == "inverse" else None,
                            lds=lds, lds_kernel=lds_kernel, lds_ks=lds_ks, lds_sigma=lds_sigma, lds_mode=lds_mode,
                            bucket_start=bucket_start, faithful=faithful).astype(np.float64)
  used = counts > 0
  if not np.any(used):
    raise ValueError("cannot build a weight table from all-zero counts")
  if np.any(values[used] <= 0):
    raise ValueError("a populated bin has a non-positive effective count (window centre < 1 with integer "
                     "truncation?); use faithful=False or another kernel")
  inv = np.divide(1.0, values, out=np.zeros_like(values), where=values > 0)
  scale = counts.sum() / np.sum(counts[used] * inv[used])
  return (scale * inv).astype(np.float32)


def bin_weight_table(labels, binning: Binning | JointBinning, reweight: str, lds: bool = False,
                     lds_kernel: str = "gaussian", lds_ks: int = 5, lds_sigma: float = 2.0,
                     lds_mode: str = "constant", faithful: bool = True,
                     inverse_clip: tuple[float, float] | None = (5, 1000)) -> np.ndarray | None:
  """Per-bin loss weights [binning.num_bins] (float32) with mean 1 over the training labels.

  Histogram of `labels` in `binning`, then `weight_table_from_counts`. Defaults are the age
  datasets' rule (INV counts clipped to [5, 1000], zero-padded LDS); STS-B is
  `Binning(50, 0, 0.1)` with `inverse_clip=None`. Per-sample weights: `table[binning.index(y)]`.
  """
  counts = label_histogram(labels, binning)
  table = weight_table_from_counts(counts, reweight, lds=lds, lds_kernel=lds_kernel, lds_ks=lds_ks,
                                   lds_sigma=lds_sigma, lds_mode=lds_mode, faithful=faithful,
                                   inverse_clip=inverse_clip)
  return None if table is None else table.ravel()


def prepare_weights(labels, reweight: str = "none", lds: bool = False, lds_kernel: str = "gaussian",
                    lds_ks: int = 5, lds_sigma: float = 2.0, max_target: int = 121, faithful: bool = True,
                    binning: Binning | JointBinning | None = None, bin_width: float | None = None) -> np.ndarray | None:
  """Per-sample weights [N] (float32) as the age datasets' `_prepare_weights`, or None for "none".

  Default bins are the integer labels 0..max_target-1 (`Binning(max_target)`, larger labels pooled
  into the last bin), which only suits non-negative integer labels: float or negative labels need
  `bin_width` (bins of that width from the smallest label, `label_binning`) or an explicit
  `binning`, and are rejected otherwise. INV clips the counts to [5, 1000]; LDS pads with zeros.
  faithful=True truncates the smoothed INV counts to integers like scipy does on the reference's
  int64 counts (docs/deviations.md R4); faithful=False keeps them as floats.
  """
  if binning is None and bin_width is not None:
    binning = label_binning(labels, bin_width)
  elif binning is None:
    values = finite_array(labels, "labels")
    if np.any(values != np.floor(values)) or np.any(values < 0):
      example = values[(values != np.floor(values)) | (values < 0)].ravel()[0]
      raise ValueError(
        f"prepare_weights bins labels as the integers 0..{max_target - 1} by default, but the labels are not "
        f"non-negative integers (e.g. {float(example)!r}); pass bin_width= (the smallest label difference you "
        "care about, e.g. bin_width=0.1) or binning=weighting.Binning(num_bins, start, bin_width)")
    binning = Binning(max_target)
  table = bin_weight_table(labels, binning, reweight, lds=lds, lds_kernel=lds_kernel, lds_ks=lds_ks,
                           lds_sigma=lds_sigma, faithful=faithful)
  return None if table is None else table[binning.index(host_labels(labels, binning))]


def label_binning(labels, bin_width: float, start: float | None = None) -> Binning:
  """Bins of `bin_width` covering the labels: from `start` (default: the smallest label rounded down
  to a multiple of `bin_width`) to the largest label, which falls in the last bin."""
  values = host_labels(labels, Binning(1))
  if not (math.isfinite(bin_width) and bin_width > 0):
    raise ValueError(f"bin_width must be finite and > 0, got {bin_width!r}")
  start = math.floor(float(values.min()) / bin_width) * bin_width if start is None else float(start)
  if values.min() < start:
    raise ValueError(f"bin start {start} is above the smallest label {float(values.min())}")
  num_bins = int(math.floor((float(values.max()) - start) / bin_width)) + 1
  return Binning(num_bins, start, float(bin_width))


DENSEWEIGHT_GRID_POINTS = 4096


def _kde_on_grid(labels: np.ndarray, bandwidth: float) -> tuple[np.ndarray, np.ndarray]:
  """Gaussian KDE on a regular grid by linear binning + convolution (what FFT-KDE packages do)."""
  lo, hi = labels.min() - 4 * bandwidth, labels.max() + 4 * bandwidth
  grid = np.linspace(lo, hi, DENSEWEIGHT_GRID_POINTS)
  step = grid[1] - grid[0]
  pos = (labels - lo) / step
  left = np.minimum(np.floor(pos).astype(np.int64), DENSEWEIGHT_GRID_POINTS - 2)
  frac = pos - left
  mass = (np.bincount(left, 1.0 - frac, DENSEWEIGHT_GRID_POINTS)
          + np.bincount(left + 1, frac, DENSEWEIGHT_GRID_POINTS))
  reach = int(np.ceil(4 * bandwidth / step))
  offsets = np.arange(-reach, reach + 1) * step
  kernel = np.exp(-0.5 * (offsets / bandwidth) ** 2) / (bandwidth * math.sqrt(2 * math.pi))
  density = np.convolve(mass, kernel)[reach:reach + DENSEWEIGHT_GRID_POINTS]
  return grid, density / labels.size


def dense_weights(labels, alpha: float = 1.0, eps: float = 1e-6, bandwidth: float | None = None,
                  query=None) -> np.ndarray:
  """DenseWeight (Steininger et al., Machine Learning 2021): w(y) = max(1 - α p'(y), ε) / mean.

  p is a Gaussian KDE of the 1-D training labels, p' its min-max scaling to [0, 1] over the
  training labels, and the weights are divided by their mean over the training labels. Default
  bandwidth 1.06 · std(y) · N^(-1/5) (Silverman's rule as in the `denseweight` package); a float is
  the kernel's standard deviation in label units. The KDE is evaluated on a 4096-point grid
  (linear binning + convolution) and interpolated linearly; the package reads the nearest grid
  point and min-max scales over its whole grid (minimum ~0) instead of the training labels.
  `query` (default: the labels) gives the points to weight, e.g. `binning.centers()` for a table;
  their p' is clipped to [0, 1]. Returns float32 with the shape of `query` flattened.
  """
  labels = finite_array(labels, "labels").astype(np.float64)
  if labels.ndim == 2 and labels.shape[1] == 1:
    labels = labels[:, 0]
  if labels.ndim != 1 or labels.size < 2:
    raise ValueError(f"DenseWeight needs at least 2 scalar labels ([N] or [N, 1]), got shape {labels.shape}")
  if not (alpha >= 0 and math.isfinite(alpha)):
    raise ValueError(f"alpha must be finite and >= 0, got {alpha!r}")
  if not eps > 0:
    raise ValueError(f"eps must be > 0, got {eps!r}")
  if bandwidth is None:
    bandwidth = 1.06 * labels.std() * labels.size ** (-0.2)
  if not (math.isfinite(bandwidth) and bandwidth > 0):
    raise ValueError(f"KDE bandwidth must be finite and > 0 (constant labels?), got {bandwidth!r}")
  grid, density = _kde_on_grid(labels, bandwidth)
  train_density = np.interp(labels, grid, density)
  lo, span = train_density.min(), np.ptp(train_density)

  def weight(points):
    scaled = np.clip((np.interp(points, grid, density) - lo) / span, 0.0, 1.0) if span > 0 else np.zeros_like(points)
    return np.maximum(1.0 - alpha * scaled, eps)

  points = labels if query is None else finite_array(query, "query").astype(np.float64).ravel()
  return (weight(points) / weight(labels).mean()).astype(np.float32)


def weight_table(config, bundle) -> np.ndarray | None:
  """Per-bin weights of `config.reweight` from the training data of `bundle` (a
  `dirjax.data.DataBundle`): INV / SQINV (± LDS) from `bundle.train_bin_counts` when the data has
  them (NYUD2) else from the training labels, or DenseWeight at the bin centres; None for "none"
  and "true_inverse" (not a function of the bin)."""
  method = config.method
  if method not in METHODS:
    raise ValueError(f"unknown reweight.method {method!r}; valid: {METHODS}")
  if config.lds and method not in ("inverse", "sqrt_inv"):
    raise ValueError("reweight.lds needs reweight.method 'inverse' or 'sqrt_inv' (as the reference asserts)")
  if method in ("none", "true_inverse"):
    return None
  if method == "dense":
    return dense_weights(bundle.train_labels, alpha=config.dense_alpha, query=bundle.binning.centers())
  kwargs = dict(lds=config.lds, lds_kernel=config.kernel, lds_ks=config.ks, lds_sigma=config.sigma,
                lds_mode=config.lds_mode, faithful=config.faithful,
                inverse_clip=tuple(config.inverse_clip) if config.inverse_clip else None)
  if bundle.train_bin_counts is not None:
    return weight_table_from_counts(bundle.train_bin_counts, method, bucket_start=bundle.first_counted_bin, **kwargs)
  return bin_weight_table(bundle.train_labels, bundle.binning, method, **kwargs)


def sample_weights(config, bundle, table: np.ndarray | None = None) -> Callable[[dict], jax.Array | None]:
  """`batch -> per-sample weights` (or None) for `config.reweight`, jit-able.

  Table methods (`weight_table`, or the already built `table`) are looked up on device as `table[binning.index(targets)]` (per
  pixel for dense targets). `true_inverse` is the Balanced-MSE synthetic `ReweightL2`:
  w_i = 1/p(y_i) from the elements' `density`, normalised to sum 1 over the batch's valid rows and
  scaled by n·d, since our `mse` averages over n·d elements where the reference sums.
  """
  if table is None:
    table = weight_table(config, bundle)
  if config.method == "true_inverse":
    if "density" not in bundle.splits["train"][0]:
      raise ValueError("reweight.method='true_inverse' needs a 'density' field in the training elements; "
                       "this data has none")

    def true_inverse(batch: dict) -> jax.Array:
      valid = batch["valid"]
      inverse = jnp.where(valid, 1.0 / jnp.where(valid, batch["density"], 1.0), 0.0)
      count = jnp.sum(valid) * batch["targets"].shape[-1]
      return inverse * (count / jnp.sum(inverse))

    return true_inverse
  if table is None:
    return lambda batch: None
  table, binning = jnp.asarray(table), bundle.binning
  return lambda batch: table[binning.index(batch["targets"])]
