"""Shot, balanced, STS-B and NYUD2 metrics against loop re-derivations, scipy and the reference's shot lists."""

import math

import numpy as np
import pytest
from scipy import stats

from dirjax import metrics, weighting
from test_weighting import TRAIN_BUCKET_NUM, read_agedb, read_stsb_scores


def scipy_gmean(x):
  with np.errstate(divide="ignore"):
    return float(stats.gmean(x))


def reference_shot_metrics(preds, labels, train_labels, many_thr=100, low_thr=20):
  """Loop over unique test labels as the reference `shot_metrics` does."""
  train_labels = np.asarray(train_labels).astype(int)
  groups = {"many": [], "medium": [], "few": []}
  for label in np.unique(labels):
    count = np.sum(train_labels == label)
    shot = "many" if count > many_thr else "few" if count < low_thr else "medium"
    groups[shot].append(preds[labels == label] - labels[labels == label])
  out = {}
  for shot, errors in groups.items():
    errors = np.concatenate(errors) if errors else np.zeros(0)
    out[shot] = errors
  out["all"] = preds - labels
  return out


def assert_group(result, errors):
  assert result["count"] == errors.size
  if errors.size == 0:
    assert result["mae"] is None and result["mse"] is None and result["gm"] is None
    return
  assert result["mae"] == pytest.approx(np.abs(errors).sum() / errors.size, rel=1e-12)
  assert result["mse"] == pytest.approx((errors ** 2).sum() / errors.size, rel=1e-12)
  assert result["gm"] == pytest.approx(scipy_gmean(np.abs(errors)), rel=1e-9, abs=1e-300)


# ----------------------------------------------------------------------------- shot metrics


def test_shot_metrics_agedb_split_and_values(shared_data_dir):
  splits = read_agedb(shared_data_dir)
  test = splits["test"]
  rng = np.random.default_rng(0)
  preds = (test + rng.normal(0, 8, test.size)).astype(np.float32)
  result = metrics.shot_metrics(preds, test, splits["train"])
  # upstream `agedb-dir/data/agedb.csv`: 51 many ages (1,530 samples), 16 medium (448), 25 few (162).
  assert (result["many"]["count"], result["medium"]["count"], result["few"]["count"]) == (1530, 448, 162)
  assert result["all"]["count"] == 2140
  oracle = reference_shot_metrics(preds.astype(np.float64), test.astype(np.float64), splits["train"])
  for group in ("all", "many", "medium", "few"):
    assert_group(result[group], oracle[group])
  medium_ages = np.unique(test[np.isin(test, [17, 18, 19, 69, 71, *range(73, 83), 85])])
  assert medium_ages.size == 16


def test_shot_metrics_zero_error_gives_zero_gm_and_empty_group_is_none():
  train = np.repeat([1, 2, 3], [150, 50, 5]).astype(np.float32)
  labels = np.array([1, 1, 2, 2, 3], np.float32)
  preds = np.array([1.0, 1.5, 2.5, 1.0, 5.0], np.float32)
  result = metrics.shot_metrics(preds, labels, train)
  assert result["many"]["gm"] == 0.0 and scipy_gmean(np.array([0.0, 0.5])) == 0.0
  assert result["medium"]["gm"] == pytest.approx(math.sqrt(0.5 * 1.0))
  assert result["few"] == {"mae": 2.0, "mse": 4.0, "gm": 2.0, "count": 1}
  no_few = metrics.shot_metrics(preds[:4], labels[:4], train)
  assert no_few["few"] == {"mae": None, "mse": None, "gm": None, "count": 0}


def test_shot_metrics_int_cast_train_labels_and_non_integer_test_labels():
  # The reference casts training labels to int and compares test labels exactly.
  train = np.concatenate([np.full(120, 4.7), np.full(30, 9.0)])
  labels = np.array([4.0, 4.7, 9.0, 9.5])
  preds = labels + 1.0
  result = metrics.shot_metrics(preds, labels, train)
  assert result["many"]["count"] == 1 and result["medium"]["count"] == 1 and result["few"]["count"] == 2


def test_shot_metrics_with_binning_counts_train_bins():
  rng = np.random.default_rng(1)
  train = rng.uniform(0, 5, 3000)
  labels = rng.uniform(0, 5, 400)
  preds = labels + rng.normal(0, 0.3, 400)
  binning = weighting.Binning(50, 0.0, 0.1)
  result = metrics.shot_metrics(preds, labels, train, many_shot_thr=65, low_shot_thr=55, binning=binning)
  train_bins = np.minimum((train.astype(np.float32) * np.float32(10)).astype(int), 49)
  test_bins = np.minimum((labels.astype(np.float32) * np.float32(10)).astype(int), 49)
  counts = np.array([np.sum(train_bins == b) for b in test_bins])
  for shot, mask in (("many", counts > 65), ("few", counts < 55), ("medium", (counts >= 55) & (counts <= 65))):
    assert_group(result[shot], (preds - labels)[mask])


@pytest.mark.parametrize("preds,labels,train,error,match", [
    (np.ones(3), np.ones((3, 1)), np.ones(3), ValueError, "same shape"),
    (np.ones(3), np.array([1.0, np.nan, 2.0]), np.ones(3), ValueError, "NaN"),
    (np.ones((3, 2)), np.ones((3, 2)), np.ones(3), ValueError, "scalar targets"),
    (np.ones(3), np.ones(3), np.zeros(0), ValueError, "train_labels is empty"),
    (np.ones(3), np.ones(3), np.array([1.0, np.inf]), ValueError, "NaN or inf"),
    (np.ones(3), np.array(["a", "b", "c"]), np.ones(3), TypeError, "numeric"),
])
def test_shot_metrics_bad_input(preds, labels, train, error, match):
  with pytest.raises(error, match=match):
    metrics.shot_metrics(preds, labels, train)


def test_shot_metrics_accepts_column_vectors():
  labels = np.array([[1.0], [2.0], [3.0]])
  preds = labels + np.array([[0.5], [-1.0], [2.0]])
  assert metrics.shot_metrics(preds, labels, np.ones(5)) == metrics.shot_metrics(preds[:, 0], labels[:, 0], np.ones(5))


@pytest.mark.parametrize("floor", [None, 1e-10])
def test_geometric_mean_matches_scipy(floor):
  x = np.abs(np.random.default_rng(2).normal(size=200))
  assert metrics.geometric_mean(x, floor) == pytest.approx(scipy_gmean(x), rel=1e-12)
  x[3] = 0.0
  substituted = np.where(x == 0, 1e-10, x)
  expected = 0.0 if floor is None else scipy_gmean(substituted)
  assert metrics.geometric_mean(x, floor) == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------- balanced metrics


def test_balanced_metrics_match_per_label_loops(shared_data_dir):
  splits = read_agedb(shared_data_dir)
  test, train = splits["test"].astype(np.float64), splits["train"]
  preds = test + np.random.default_rng(3).normal(0, 6, test.size)
  result = metrics.balanced_metrics(preds, test, train_labels=train)
  per_label = {}
  for label in np.unique(test):
    e = preds[test == label] - label
    per_label[label] = (np.mean(np.abs(e)), np.mean(e ** 2), np.sum(train.astype(int) == label))
  assert result["bmae"] == pytest.approx(np.mean([v[0] for v in per_label.values()]), rel=1e-12)
  assert result["bmse"] == pytest.approx(np.mean([v[1] for v in per_label.values()]), rel=1e-12)
  shots = {"many": lambda c: c > 100, "few": lambda c: c < 20, "medium": lambda c: 20 <= c <= 100}
  for shot, rule in shots.items():
    labels = [label for label, v in per_label.items() if rule(v[2])]
    assert result[shot]["num_labels"] == len(labels)
    assert result[shot]["bmae"] == pytest.approx(np.mean([per_label[l][0] for l in labels]), rel=1e-12)
    assert result[shot]["bmse"] == pytest.approx(np.mean([per_label[l][1] for l in labels]), rel=1e-12)
    in_shot = np.isin(test, labels)
    assert result[shot]["count"] == in_shot.sum()
    assert result[shot]["gm"] == pytest.approx(scipy_gmean(np.abs(preds - test)[in_shot]), rel=1e-9)
  assert (result["many"]["num_labels"], result["medium"]["num_labels"], result["few"]["num_labels"]) == (51, 16, 25)


def test_balanced_metrics_hand_example_and_binning():
  labels = np.array([1.0, 1.0, 1.0, 2.0])
  preds = np.array([1.0, 1.0, 4.0, 3.0])
  # label 1: MAE 1, MSE 3; label 2: MAE 1, MSE 1 -> bMAE 1, bMSE 2 (plain MAE 1, MSE 2.5).
  assert metrics.balanced_metrics(preds, labels) == {"bmae": 1.0, "bmse": 2.0}
  # One bin [0, 4) holds all four samples: the balanced numbers become the plain ones.
  binned = metrics.balanced_metrics(preds, labels, binning=weighting.Binning(2, 0.0, 4.0))
  assert binned == {"bmae": 1.0, "bmse": 2.5}
  empty_shots = metrics.balanced_metrics(preds, labels, train_labels=np.full(200, 1.0))
  assert empty_shots["medium"] == {"bmae": None, "bmse": None, "gm": None, "count": 0, "num_labels": 0}
  with pytest.raises(ValueError, match="at least one"):
    metrics.balanced_metrics(np.zeros(0), np.zeros(0))


# ----------------------------------------------------------------------------- STS-B


def test_stsb_shot_lists_partition_bins_and_match_train_counts(shared_data_dir):
  lists = metrics.STSB_SHOTS
  together = sorted(b for shot in lists.values() for b in shot)
  assert together == list(range(50))
  assert len(lists["many"]) == 22 and len(lists["medium"]) == 7 and len(lists["few"]) == 21
  counts = np.histogram(read_stsb_scores(shared_data_dir, "train_new.tsv"), bins=50, range=(0.0, 5.0))[0]
  # `STSShotAverage` lists of `sts-b-dir/util.py`: consistent with many > 100, medium 35-98, few <= 27 on train_new.
  assert counts[list(lists["many"])].min() > 100
  assert 35 <= counts[list(lists["medium"])].min() and counts[list(lists["medium"])].max() <= 98
  assert counts[list(lists["few"])].max() <= 27


def test_correlation_metrics_stsb_test_split(shared_data_dir):
  labels = read_stsb_scores(shared_data_dir, "test_new.tsv")
  rng = np.random.default_rng(4)
  preds = (labels + rng.normal(0, 0.8, labels.size)).astype(np.float32)
  preds[:5] = labels[:5]  # exact zero errors: GM uses 1e-10 instead
  result = metrics.correlation_metrics(preds, labels)
  edges = np.histogram(np.array([], np.float32), bins=50, range=(0.0, 5.0))[1]
  bins = np.where(labels == 5.0, 49, np.searchsorted(edges, labels, side="right") - 1)
  shot_of = {b: shot for shot, members in metrics.STSB_SHOTS.items() for b in members}
  shot = np.array([shot_of[b] for b in bins])
  assert (result["many"]["count"], result["medium"]["count"], result["few"]["count"]) == (756, 170, 74)
  p64, y64 = preds.astype(np.float64), labels.astype(np.float64)
  for group, mask in (("all", np.ones(labels.size, bool)), ("many", shot == "many"), ("medium", shot == "medium"),
                      ("few", shot == "few")):
    p, y = p64[mask], y64[mask]
    diff = np.abs(p - y)
    assert result[group]["mse"] == pytest.approx(np.mean((p - y) ** 2), rel=1e-12)
    assert result[group]["mae"] == pytest.approx(np.mean(diff), rel=1e-12)
    assert result[group]["gm"] == pytest.approx(scipy_gmean(np.where(diff == 0, 1e-10, diff)), rel=1e-9)
    assert result[group]["pearson"] == pytest.approx(stats.pearsonr(p, y)[0], rel=1e-9)
    assert result[group]["spearman"] == pytest.approx(stats.spearmanr(p, y)[0], rel=1e-9)


def test_correlation_metrics_ties_small_groups_and_custom_lists():
  labels = np.array([0.0, 0.0, 0.05, 1.0, 1.0, 2.0, 2.0, 2.0])
  preds = np.array([0.1, 0.1, 0.3, 0.9, 0.9, 2.5, 1.5, 2.5])
  lists = {"many": (0,), "medium": (1,), "few": tuple(range(2, 5))}
  result = metrics.correlation_metrics(preds, labels, shot_of_bin=lists, binning=weighting.Binning(5))
  assert result["many"]["count"] == 3 and result["medium"]["count"] == 2 and result["few"]["count"] == 3
  assert result["all"]["spearman"] == pytest.approx(stats.spearmanr(preds, labels)[0], rel=1e-12)
  assert result["many"]["pearson"] == pytest.approx(stats.pearsonr(preds[:3], labels[:3])[0], rel=1e-12)
  single = metrics.correlation_metrics(np.array([1.0, 2.0]), np.array([0.0, 4.0]), shot_of_bin=lists,
                                       binning=weighting.Binning(5))
  assert single["many"]["count"] == 1 and single["many"]["pearson"] is None and single["many"]["spearman"] is None
  assert single["medium"]["mse"] is None and single["medium"]["count"] == 0
  with pytest.raises(ValueError, match="exactly the keys"):
    metrics.correlation_metrics(preds, labels, shot_of_bin={"many": (0,), "few": (1,)})


# ----------------------------------------------------------------------------- NYUD2 depth


def test_nyud2_shot_lists_partition_and_match_bucket_counts():
  lists = metrics.NYUD2_SHOTS
  assert sorted(b for shot in lists.values() for b in shot) == list(range(100))
  assert (len(lists["many"]), len(lists["medium"]), len(lists["few"]) - 7) == (39, 15, 39)
  # `Evaluator` lists of `nyud2-dir/util.py`: thresholds on the pixel counts separate the lists (buckets 7..99): many
  # >= 28.3 M, medium 11.5-25.8 M, few <= 9.7 M (rounded to 0.1 M).
  many = TRAIN_BUCKET_NUM[list(lists["many"])]
  medium = TRAIN_BUCKET_NUM[list(lists["medium"])]
  few = TRAIN_BUCKET_NUM[[b for b in lists["few"] if b >= 7]]
  assert many.min() > medium.max() and medium.min() > few.max()
  np.testing.assert_allclose([many.min(), medium.min(), medium.max(), few.max()], [28.3e6, 11.5e6, 25.8e6, 9.7e6],
                             atol=0.05e6)


def reference_depth_metrics(output, target):
  """The reference `Evaluator.evaluate` formulas in float32."""
  diff = np.abs(output - target)
  ratio = np.maximum(output / target, target / output)
  mse = np.sum(diff ** 2) / target.size
  return {"mse": mse, "rmse": np.sqrt(mse), "mae": np.sum(diff) / target.size,
          "abs_rel": np.sum(diff / target) / target.size,
          "log10": np.sum(np.abs(np.log(output) / math.log(10) - np.log(target) / math.log(10))) / target.size,
          **{f"delta{k}": np.sum(ratio <= 1.25 ** k) / target.size for k in (1, 2, 3)}, "count": target.size}


def test_depth_metrics_match_reference_formulas():
  rng = np.random.default_rng(5)
  depths = rng.uniform(0.7, 10.0, size=(4, 30, 40, 1)).astype(np.float32)
  preds = np.clip(depths * rng.lognormal(0, 0.3, depths.shape), 0.05, None).astype(np.float32)
  mask = rng.random(depths.shape) < 0.6
  result = metrics.depth_metrics(preds, depths, mask=mask)
  p, d = preds[mask], depths[mask]
  buckets = np.minimum((d * np.float32(10)).astype(int), 99)
  for group, members in (("all", range(100)), *metrics.NYUD2_SHOTS.items()):
    selected = np.isin(buckets, list(members))
    expected = reference_depth_metrics(p[selected], d[selected])
    assert result[group]["count"] == expected.pop("count")
    for key, value in expected.items():
      assert result[group][key] == pytest.approx(float(value), rel=2e-5), (group, key)
  assert set(result["all"]) == {*metrics.DEPTH_METRICS, "count"}


def test_depth_metrics_empty_group_and_errors():
  depths = np.full((2, 3), 2.05, np.float32)  # bucket 20: many only
  result = metrics.depth_metrics(depths * 1.1, depths)
  assert result["many"]["count"] == 6 and result["many"]["delta1"] == 1.0
  assert result["few"] == {**dict.fromkeys(metrics.DEPTH_METRICS), "count": 0}
  with pytest.raises(ValueError, match="same shape"):
    metrics.depth_metrics(depths[:, :2], depths)
  with pytest.raises(ValueError, match="mask"):
    metrics.depth_metrics(depths, depths, mask=np.ones(3, bool))
  with pytest.raises(ValueError, match="NaN"):
    metrics.depth_metrics(depths, np.where(depths > 0, np.nan, depths))
