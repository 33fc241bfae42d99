"""SMOTER / SMOGN: relevance function, bumps, neighbour search, interpolation and balancing counts."""

import numpy as np
import pytest

from dirjax.data import smogn


def _skewed(seed=0, n_normal=300, n_high=24, n_low=20):
  rng = np.random.default_rng(seed)
  y = np.concatenate([rng.normal(0, 1, n_normal), rng.normal(7, 0.7, n_high), rng.normal(-6, 0.5, n_low)])
  x = np.stack([y + rng.normal(0, 0.3, len(y)), rng.normal(0, 1, len(y)), rng.uniform(-1, 1, len(y))], 1)
  return x, y


def test_relevance_hand_calculation():
  # y = 1..9 plus the outlier 30; midpoint quartiles of the 10 sorted values (by hand): Q1 at position
  # 0.25·9 = 2.25 → (y[2] + y[3]) / 2 = 3.5; median (5 + 6) / 2 = 5.5; Q3 at 6.75 → (7 + 8) / 2 = 7.5.
  y = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 30], float)
  stats, beyond = smogn.box_plot_stats(y)
  np.testing.assert_allclose(stats, [1, 3.5, 5.5, 7.5, 9])  # fences −2.5 / 13.5 → whiskers 1 and 9
  np.testing.assert_array_equal(beyond, [30])
  points = smogn.relevance_control_points(y)
  np.testing.assert_allclose(points, [[1, 0], [5.5, 0], [9, 1]])  # no low extremes → (min, 0)
  # Hermite with zero slopes between 5.5 and 9: φ = 3t² − 2t³.
  t = (7.0 - 5.5) / 3.5
  np.testing.assert_allclose(smogn.relevance(y, points)[6], 3 * t * t - 2 * t ** 3)
  phi = smogn.relevance(y)
  np.testing.assert_allclose(phi[:5], 0.0)  # 1..5 between (1, 0) and (5.5, 0)
  assert phi[8] == 1.0 and phi[9] == 1.0  # whisker and beyond: fully relevant
  assert np.all(np.diff(phi[4:9]) >= 0) and np.all((phi >= 0) & (phi <= 1))


def test_relevance_below_first_point_is_one_and_symmetric():
  y = np.array([-40.0, *np.arange(1, 10), 40.0])
  phi = smogn.relevance(y)
  assert phi[0] == 1.0 and phi[-1] == 1.0
  np.testing.assert_allclose(phi[1:-1], phi[1:-1][::-1], atol=1e-12)  # symmetric data → symmetric φ


def test_neighbours_match_brute_force():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(57, 5))
  idx, med = smogn.neighbours(x, 4, chunk_bytes=8 * 57 * 7)  # several chunks
  d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
  np.testing.assert_allclose(med, np.median(d, axis=1))
  np.fill_diagonal(d, np.inf)
  np.testing.assert_array_equal(idx, np.argsort(d, axis=1)[:, :4])


@pytest.mark.parametrize("method", ["smoter", "smogn"])
def test_synthetic_examples_on_segments_to_rare_neighbours(method):
  x, y = _skewed()
  plan = smogn.resample_plan(x, y, method, seed=1)
  new_x = smogn.apply_plan(x, plan, seed=2)
  synth_x = new_x[len(plan.kept):]
  phi = smogn.relevance(y)
  interpolated = plan.noise == 0
  assert interpolated.any()
  for s, (seed_i, partner, lam, target) in enumerate(zip(plan.seeds, plan.partners, plan.lam, plan.targets)):
    if not interpolated[s]:
      continue
    # Brute force: k = 5 nearest examples on the seed's side of the threshold, in the seed's bump.
    bump = plan.bump_members[plan.bump[s]]
    assert seed_i in bump and partner in bump and (phi[seed_i] >= 0.5) == (phi[partner] >= 0.5)
    d = np.linalg.norm(x[bump] - x[seed_i], axis=1)
    d[bump == seed_i] = np.inf
    assert partner in bump[np.argsort(d)[:5]]
    np.testing.assert_allclose(synth_x[s], x[seed_i] + lam * (x[partner] - x[seed_i]))
    # Inverse-distance weighted target on the segment = linear interpolation with the same u.
    np.testing.assert_allclose(target, (1 - lam) * y[seed_i] + lam * y[partner], rtol=1e-9)
  # Synthetic examples only come from rare bumps here (the normal bump is under-sampled).
  assert np.all(phi[plan.seeds] >= 0.5)


def test_smogn_gaussian_examples_use_seed_and_bump_std():
  x, y = _skewed(seed=5)
  plan = smogn.resample_plan(x, y, "smogn", seed=0)
  gaussian = np.flatnonzero(plan.noise > 0)
  assert len(gaussian) > 0 and np.all(plan.noise[gaussian] <= 0.02)
  np.testing.assert_array_equal(plan.partners[gaussian], plan.seeds[gaussian])
  new_x = smogn.apply_plan(x, plan, seed=3)[len(plan.kept):]
  deviations = []
  for s in gaussian:
    std = x[plan.bump_members[plan.bump[s]]].std(axis=0)
    deviations.append((new_x[s] - x[plan.seeds[s]]) / (plan.noise[s] * std))
  deviations = np.concatenate(deviations)
  assert abs(deviations.mean()) < 0.5 and 0.6 < deviations.std() < 1.4  # standard normal ε
  # A neighbour is "unsafe" iff it is at least half the seed's median distance away.
  x_flat = x.reshape(len(x), -1)
  for s in np.flatnonzero(plan.noise == 0)[:20]:
    bump = plan.bump_members[plan.bump[s]]
    median = np.median(np.linalg.norm(x_flat[bump] - x_flat[plan.seeds[s]], axis=1))
    assert np.linalg.norm(x_flat[plan.partners[s]] - x_flat[plan.seeds[s]]) < median / 2


def test_balance_counts():
  x, y = _skewed()
  phi = smogn.relevance(y)
  order = np.argsort(y)
  rare_sorted = phi[order] >= 0.5
  runs = np.split(order, np.flatnonzero(np.diff(rare_sorted.astype(int))) + 1)
  plan = smogn.resample_plan(x, y, "smoter", seed=0)
  assert [sorted(r) for r in runs] == [sorted(b) for b in plan.bump_members]
  goal = round(len(y) / len(runs))
  for b, run in enumerate(runs):
    kept = np.isin(plan.kept, run).sum()
    made = (plan.bump == b).sum()
    if len(run) >= goal:
      assert kept == int(goal / len(run) * len(run)) and made == 0
    else:
      per_seed = int(goal / len(run) - 1)
      assert kept == len(run)
      assert made == per_seed * len(run) + int(len(run) * (goal / len(run) - 1 - per_seed))
  new_x, new_y, _ = smogn.resample(x, y, "smoter", seed=0)
  assert len(new_x) == len(new_y) == plan.num_examples
  assert len(np.unique(plan.kept)) == len(plan.kept)


def test_images_interpolate_pixels():
  rng = np.random.default_rng(0)
  _, y = _skewed()
  imgs = rng.integers(0, 256, size=(len(y), 4, 4, 3)).astype(np.float32)
  features = imgs.reshape(len(y), -1)[:, :8]  # neighbour search on a cheaper representation
  plan = smogn.resample_plan(features, y, "smoter", seed=0)
  out = smogn.apply_plan(imgs, plan)
  assert out.shape == (plan.num_examples, 4, 4, 3)
  s = 0
  np.testing.assert_allclose(out[len(plan.kept) + s],
                             imgs[plan.seeds[s]] + plan.lam[s] * (imgs[plan.partners[s]] - imgs[plan.seeds[s]]),
                             rtol=1e-5)


def test_bad_inputs():
  x, y = _skewed()
  with pytest.raises(ValueError, match="unknown method"):
    smogn.resample_plan(x, y, "adasyn")
  with pytest.raises(ValueError, match="1-D"):
    smogn.resample_plan(x, y[:, None])
  with pytest.raises(ValueError, match="finite"):
    smogn.relevance(np.array([1.0, np.nan]))
  with pytest.raises(ValueError, match="constant"):
    smogn.resample_plan(np.zeros((10, 2)), np.arange(10.0))
  with pytest.raises(ValueError, match="pert"):
    smogn.resample_plan(x, y, pert=0.0)
