"""SMOTER (Torgo et al. 2013) and SMOGN (Branco, Torgo & Ribeiro 2017) as an offline dataset transform.

DIR paper baselines (Yang et al. 2021, Tables 1–2): the maintainers state that for images "the
interpolation is done in the input space" (pixels; paper App. C.1), i.e. exactly this transform
applied to flattened images. `resample_plan` only needs a feature matrix [N, D] (tabular features,
flattened pixels, or any embedding used for the neighbour search); `apply_plan` then builds the
new examples in any array space [N, ...] (for images: the pixels, possibly at another resolution
than the one used for the search).

Algorithm (hyper-parameter defaults of the `smogn` PyPI package 0.1.2: k=5, pert=0.02,
relevance threshold 0.5, box-plot relevance with coef 1.5 on both tails, "balance" sampling):
1. Relevance φ(y): a piecewise-cubic Hermite (PCHIP, zero slopes at the control points)
   through (lower whisker, 1 if there are low extremes else (min y, 0)), (median, 0),
   (upper whisker, 1 if there are high extremes else (max y, 0)); φ = 1 below the first control
   point and φ = value of the last control point above it. Box-plot stats as the `smogn` package:
   quartiles by `np.quantile(method="midpoint")`, whiskers = most extreme observations inside
   Q1 − coef·IQR, Q3 + coef·IQR.
2. Bumps: maximal runs of the sorted targets with φ ≥ threshold (rare) or < threshold (normal).
3. "balance": every bump gets b = round(N / #bumps) examples: a bump larger than b is randomly
   under-sampled to int(b / n · n) examples (no replacement); a smaller bump keeps all its
   examples and gets, per seed, int(b/n − 1) synthetic examples, plus one more for
   int(n · frac(b/n − 1)) seeds drawn without replacement.
4. A synthetic example picks one of the seed's k nearest neighbours inside its bump (Euclidean
   on the features). SMOTER: x = x_s + u·(x_nn − x_s), u ~ U[0, 1), target = inverse-distance
   weighted mean (d_nn·y_s + d_s·y_nn)/(d_s + d_nn) of the two targets, which on the segment is
   (1 − u)·y_s + u·y_nn (plain mean when d_s = d_nn). SMOGN: the same when the neighbour is
   "safe", dist(x_s, x_nn) < maxD = median of the seed's distances to its bump (itself included,
   as the package) / 2; otherwise Gaussian noise around the seed, x = x_s + t·std_bump(x)·ε,
   y = y_s + t·std_bump(y)·ε', t = min(pert, maxD).

Deliberate deviations from the `smogn` package (which are bugs w.r.t. the papers and R's UBL):
original examples of over-sampled bumps are kept (the package drops them); under-sampling keeps
the drawn examples (the package keeps all *other* rows of the whole data set); neighbour
distances use the features only (the package includes the target column); the equal-distance
target is (y_s + y_nn)/2 (the package computes y_s + y_nn/2); no clipping of features at 0.
"""

import dataclasses

import numpy as np

METHODS = ("smoter", "smogn")


def box_plot_stats(y: np.ndarray, coef: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
  """(five-number summary [lower whisker, Q1, median, Q3, upper whisker], values beyond the whiskers)."""
  if coef <= 0:
    raise ValueError(f"box-plot coef must be > 0, got {coef}")
  y = np.asarray(y, np.float64)
  q1, median, q3 = np.quantile(y, [0.25, 0.5, 0.75], method="midpoint")
  iqr = q3 - q1
  low = y[y >= q1 - coef * iqr].min()
  high = y[y <= q3 + coef * iqr].max()
  return np.array([low, q1, median, q3, high]), y[(y < low) | (y > high)]


def relevance_control_points(y: np.ndarray, coef: float = 1.5, extremes: str = "both") -> np.ndarray:
  """Control points [P, 2] = (y, φ) of the automatic box-plot relevance (slopes are all 0)."""
  if extremes not in ("both", "low", "high"):
    raise ValueError(f"extremes must be 'both', 'low' or 'high', got {extremes!r}")
  y = np.asarray(y, np.float64)
  stats, beyond = box_plot_stats(y, coef)
  lo, hi = y.min(), y.max()
  points = [(stats[0], 1.0) if extremes in ("both", "low") and (beyond < stats[0]).any() else (lo, 0.0)]
  if stats[2] != lo:
    points.append((stats[2], 0.0))
  if extremes in ("both", "high") and (beyond > stats[4]).any():
    points.append((stats[4], 1.0))
  elif stats[2] != hi:
    points.append((hi, 0.0))
  return np.array(points)


def relevance(y: np.ndarray, control_points: np.ndarray | None = None, coef: float = 1.5,
              extremes: str = "both") -> np.ndarray:
  """φ(y) ∈ [0, 1]: zero-slope cubic Hermite through the control points (vectorised).

  With zero end slopes the monotone (Fritsch–Carlson) slope adjustment of PCHIP changes nothing,
  so between points x_i < x_{i+1}: φ = φ_i + (φ_{i+1} − φ_i)·(3t² − 2t³), t = (y − x_i)/(x_{i+1} − x_i).
  """
  y = np.asarray(y, np.float64)
  if not np.isfinite(y).all():
    raise ValueError("relevance: targets must be finite")
  points = relevance_control_points(y, coef, extremes) if control_points is None else np.asarray(control_points)
  xs, phis = points[:, 0], points[:, 1]
  i = np.searchsorted(xs, y, side="right") - 1  # interval index, as bisect.bisect - 1
  inner = (i >= 0) & (i < len(xs) - 1)
  j = np.clip(i, 0, max(len(xs) - 2, 0))
  out = np.where(i < 0, 1.0, phis[np.clip(i, 0, len(xs) - 1)])
  if len(xs) > 1:
    t = (y - xs[j]) / (xs[j + 1] - xs[j])
    out = np.where(inner, phis[j] + (phis[j + 1] - phis[j]) * t * t * (3.0 - 2.0 * t), out)
  return out


def bumps(targets: np.ndarray, phi: np.ndarray, threshold: float = 0.5) -> list[np.ndarray]:
  """Index arrays (into `targets`) of the maximal runs of sorted targets on one side of `threshold`."""
  order = np.argsort(targets, kind="stable")
  rare = phi[order] >= threshold
  cuts = np.flatnonzero(rare[1:] != rare[:-1]) + 1
  return np.split(order, cuts)


def neighbours(features: np.ndarray, k: int, chunk_bytes: int = 1 << 26) -> tuple[np.ndarray, np.ndarray]:
  """k nearest neighbours (self excluded) of every row, and each row's median distance (self included).

  Pairwise Euclidean distances are computed in row chunks (‖a‖² + ‖b‖² − 2a·b, float64) so memory
  stays O(chunk · N); returns (indices [N, k] sorted by distance, medians [N]).
  """
  x = np.asarray(features, np.float64).reshape(len(features), -1)
  n = len(x)
  if not 1 <= k < n:
    raise ValueError(f"need 1 <= k < number of examples in the bump, got k={k}, n={n}")
  sq = np.einsum("ij,ij->i", x, x)
  rows = max(1, chunk_bytes // (8 * n))
  idx = np.empty((n, k), np.int64)
  medians = np.empty(n)
  for start in range(0, n, rows):
    block = slice(start, min(start + rows, n))
    d2 = np.maximum(sq[block, None] + sq[None, :] - 2.0 * x[block] @ x.T, 0.0)
    d2[np.arange(block.stop - block.start), np.arange(block.start, block.stop)] = 0.0
    medians[block] = np.sqrt(np.median(d2, axis=1))
    np.fill_diagonal(d2[:, block.start:block.stop], np.inf)
    near = np.argpartition(d2, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(d2, near, axis=1), axis=1, kind="stable")
    idx[block] = np.take_along_axis(near, order, axis=1)
  return idx, medians


@dataclasses.dataclass(frozen=True)
class ResamplePlan:
  """Result of `resample_plan`: originals kept + one row per synthetic example.

  `seeds`/`partners` index the original data; `lam` is u (interpolated examples) and `noise`
  the perturbation t (Gaussian examples; 0 for interpolated ones); `targets` are the synthetic
  examples' targets; `bump` the bump id of each seed (for the per-bump std of the noise).
  """
  kept: np.ndarray
  seeds: np.ndarray
  partners: np.ndarray
  lam: np.ndarray
  noise: np.ndarray
  bump: np.ndarray
  targets: np.ndarray
  bump_members: tuple[np.ndarray, ...]

  @property
  def num_examples(self) -> int:
    return len(self.kept) + len(self.seeds)


def resample_plan(features: np.ndarray, targets: np.ndarray, method: str = "smogn", *, k: int = 5,
                  pert: float = 0.02, threshold: float = 0.5, coef: float = 1.5, extremes: str = "both",
                  seed: int = 0) -> ResamplePlan:
  """Plans a SMOTER / SMOGN resampling of (features [N, ...], targets [N]) (see module docstring)."""
  if method not in METHODS:
    raise ValueError(f"unknown method {method!r}; valid: {METHODS}")
  if not 0 < pert <= 1:
    raise ValueError(f"pert must be in (0, 1], got {pert}")
  if not 0 < threshold <= 1:
    raise ValueError(f"relevance threshold must be in (0, 1], got {threshold}")
  y = np.asarray(targets, np.float64)
  if y.ndim != 1:
    raise ValueError(f"targets must be 1-D [N], got shape {y.shape}")
  x = np.asarray(features).reshape(len(features), -1)
  if len(x) != len(y):
    raise ValueError(f"{len(x)} feature rows but {len(y)} targets")
  if not np.isfinite(x).all():
    raise ValueError("features must be finite")
  phi = relevance(y, coef=coef, extremes=extremes)
  if (phi == 0).all() or (phi == 1).all():
    raise ValueError("relevance is constant over the targets: no rare region to over-sample")
  rng = np.random.default_rng(seed)
  groups = bumps(y, phi, threshold)
  goal = round(len(y) / len(groups))  # "balance": every bump gets b = round(N / #bumps) examples
  kept, synth = [], []
  for b, members in enumerate(groups):
    n = len(members)
    if goal <= n:
      kept.append(members if goal == n else rng.choice(members, size=int(goal / n * n), replace=False))
      continue
    kept.append(members)
    ratio = goal / n
    per_seed = int(ratio - 1)
    extra = rng.choice(n, size=int(n * (ratio - 1 - per_seed)), replace=False)
    local = np.concatenate([np.repeat(np.arange(n), per_seed), extra])
    synth.append(_synthesise(x[members], y[members], members, local, b, method, k, pert, rng))
  columns = [np.concatenate([s[i] for s in synth]) if synth else np.zeros(0) for i in range(6)]
  seeds, partners, lam, noise, bump, new_y = columns
  return ResamplePlan(
    kept=np.sort(np.concatenate(kept)), seeds=seeds.astype(np.int64), partners=partners.astype(np.int64),
    lam=lam, noise=noise, bump=bump.astype(np.int64), targets=new_y, bump_members=tuple(groups))


def _synthesise(x, y, members, local, bump_id, method, k, pert, rng):
  """Synthetic rows of one bump, seeds `local` (indices into the bump) → tuple of arrays."""
  n = len(members)
  knn, medians = neighbours(x, min(k, n - 1))
  pick = knn[local, rng.integers(0, knn.shape[1], size=len(local))]
  lam = rng.random(len(local))
  seed_x, partner_x = x[local], x[pick]
  gap = np.linalg.norm(partner_x - seed_x, axis=1)
  max_d = medians[local] / 2.0
  safe = np.ones(len(local), bool) if method == "smoter" else gap < max_d
  # Inverse-distance weighted target on the segment (features only).
  new_x = seed_x + lam[:, None] * (partner_x - seed_x)
  d_seed = np.linalg.norm(new_x - seed_x, axis=1)
  d_partner = np.linalg.norm(new_x - partner_x, axis=1)
  equal = d_seed == d_partner
  interp_y = np.where(equal, (y[local] + y[pick]) / 2.0,
                      (d_partner * y[local] + d_seed * y[pick]) / np.where(equal, 1.0, d_seed + d_partner))
  t = np.minimum(pert, max_d)
  eps = rng.standard_normal(len(local))
  noise_y = y[local] + t * y.std() * eps
  return (members[local], np.where(safe, members[pick], members[local]), np.where(safe, lam, 0.0),
          np.where(safe, 0.0, t), np.full(len(local), bump_id), np.where(safe, interp_y, noise_y))


def apply_plan(data: np.ndarray, plan: ResamplePlan, seed: int = 0) -> np.ndarray:
  """Builds the resampled array [M + S, ...]: kept originals, then the synthetic examples.

  `data` is any per-example array aligned with the planned targets (tabular features, images
  [N, H, W, C], ...). Interpolated examples are x_s + u·(x_nn − x_s); Gaussian (SMOGN) ones are
  x_s + t·std_bump(x)·ε with a fresh ε per element (numpy `seed`) and the bump's per-element std.
  """
  data = np.asarray(data)
  base = data.astype(np.float64) if not np.issubdtype(data.dtype, np.floating) else data
  seeds, partners = base[plan.seeds], base[plan.partners]
  lam = plan.lam.reshape((-1,) + (1,) * (data.ndim - 1))
  synthetic = seeds + lam * (partners - seeds)
  gaussian = np.flatnonzero(plan.noise > 0)
  if len(gaussian):
    rng = np.random.default_rng(seed)
    std = np.stack([base[m].std(axis=0) for m in plan.bump_members])
    scale = plan.noise[gaussian].reshape((-1,) + (1,) * (data.ndim - 1))
    synthetic[gaussian] = seeds[gaussian] + scale * std[plan.bump[gaussian]] * rng.standard_normal(
      synthetic[gaussian].shape)
  return np.concatenate([base[plan.kept], synthetic]).astype(base.dtype)


def resample(features: np.ndarray, targets: np.ndarray, method: str = "smogn", *, seed: int = 0,
             **kwargs) -> tuple[np.ndarray, np.ndarray, ResamplePlan]:
  """Tabular convenience: (new features [M+S, D], new targets [M+S], plan)."""
  plan = resample_plan(features, targets, method, seed=seed, **kwargs)
  new_x = apply_plan(features, plan, seed=seed + 1)
  new_y = np.concatenate([np.asarray(targets, np.float64)[plan.kept], plan.targets])
  return new_x, new_y, plan
