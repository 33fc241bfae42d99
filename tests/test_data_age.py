"""AgeDB-DIR / IMDB-WIKI-DIR data pipeline: decoding, transforms, labels, errors, real agedb.csv."""

import os
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dirjax import data as data_registry
from dirjax.data import age, images
from tests import fixtures_age

# upstream `agedb-dir/data/agedb.csv`: AgeDB-DIR train counts for ages 0..101.
AGEDB_TRAIN_COUNTS = [
  0, 1, 0, 4, 2, 2, 4, 5, 4, 2, 5, 8, 6, 8, 9, 15, 18, 28, 60, 50, 101, 103, 123, 152, 199, 224,
  215, 244, 287, 253, 325, 256, 318, 278, 302, 353, 287, 310, 322, 261, 326, 260, 296, 265, 221, 282,
  227, 229, 251, 207, 257, 227, 250, 190, 198, 234, 167, 183, 186, 153, 185, 147, 178, 158, 133, 171,
  117, 117, 155, 90, 156, 85, 115, 96, 78, 98, 49, 44, 46, 26, 31, 26, 24, 19, 15, 20, 13, 10, 7, 7,
  7, 7, 5, 5, 3, 3, 2, 1, 2, 1, 2, 1]


@pytest.fixture
def agedb_dir(tmp_path):
  return fixtures_age.make_agedb(str(tmp_path / "agedb"))


def _oracle_image(path: str, size: int) -> np.ndarray:
  """torchvision Resize(bilinear, PIL) → ToTensor → Normalize(.5, .5), re-derived with PIL + numpy."""
  pixels = np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR), np.float64)
  return (pixels / 255.0 - 0.5) / 0.5


def test_splits_elements_and_labels(agedb_dir):
  bundle = data_registry.get_data(fixtures_age.data_config(agedb_dir, img_size=32), seed=0)
  table = pd.read_csv(os.path.join(agedb_dir, "agedb.csv"))
  for split in ("train", "val", "test"):
    rows = table[table["split"] == split].reset_index(drop=True)
    ds = bundle.splits[split]
    assert len(ds) == len(rows)
    for i in (0, len(rows) - 1):
      example = ds[i]
      assert example["inputs"].shape == (32, 32, 3) and example["inputs"].dtype == np.float32
      assert example["targets"].shape == (1,) and example["targets"].dtype == np.float32
      assert example["targets"][0] == rows["age"][i]
      np.testing.assert_allclose(example["inputs"], _oracle_image(os.path.join(agedb_dir, rows["path"][i]), 32),
                                 atol=1e-6)
  np.testing.assert_array_equal(bundle.train_labels, table[table["split"] == "train"]["age"].to_numpy(np.float32))
  assert bundle.binning.num_bins == 121
  assert bundle.fds_buckets["bucket_start"] == 3 and bundle.fds_buckets["bucket_num"] == 100


def test_split_targets_come_from_the_table_without_decoding_an_image(agedb_dir, monkeypatch):
  bundle = data_registry.get_data(fixtures_age.data_config(agedb_dir, img_size=32), seed=0)
  decodes = []
  real_load = images.load_rgb
  monkeypatch.setattr(images, "load_rgb", lambda *a, **k: decodes.append(a) or real_load(*a, **k))
  table = pd.read_csv(os.path.join(agedb_dir, "agedb.csv"))
  for split in ("train", "val", "test"):
    targets = bundle.targets(split)
    np.testing.assert_array_equal(targets, table[table["split"] == split]["age"].to_numpy(np.float32)[:, None])
    assert targets.shape == (len(bundle.splits[split]), 1)
  assert decodes == []
  bundle.splits["val"][0]  # the counter does see a decode
  assert len(decodes) == 1


def test_imdb_wiki_name_uses_same_pipeline(agedb_dir):
  shutil.copy(os.path.join(agedb_dir, "agedb.csv"), os.path.join(agedb_dir, "imdb_wiki.csv"))
  bundle = data_registry.get_data(fixtures_age.data_config(agedb_dir, "imdb_wiki_dir", img_size=16), seed=0)
  assert bundle.fds_buckets["bucket_start"] == 0
  assert bundle.splits["train"][0]["inputs"].shape == (16, 16, 3)


def test_random_crop_flip_is_a_window_of_the_zero_padded_image():
  rng_img = np.random.default_rng(1)
  image = images.normalize(rng_img.integers(0, 256, size=(12, 10, 3), dtype=np.uint8))
  padded = np.pad(image, ((4, 4), (4, 4), (0, 0)), constant_values=-1.0)  # black (0) normalised
  seen_offsets, seen_flips = set(), set()
  rng = np.random.default_rng(0)
  for _ in range(400):
    out = images.random_crop_flip(image, rng, padding=4)
    matches = [(top, left, flip) for top in range(9) for left in range(9) for flip in (False, True)
               if np.array_equal(out, padded[top:top + 12, left:left + 10][:, ::-1] if flip
                                 else padded[top:top + 12, left:left + 10])]
    assert matches, "output is not a (flipped) window of the padded image"
    seen_offsets.update((t, l) for t, l, _ in matches)
    seen_flips.update(f for *_, f in matches)
  assert seen_flips == {False, True}
  assert {(0, 0), (8, 8), (0, 8), (8, 0)} <= seen_offsets  # extreme crops are reachable


def test_train_augment_keeps_targets_and_shape(agedb_dir):
  bundle = data_registry.get_data(fixtures_age.data_config(agedb_dir, img_size=32), seed=0)
  example = bundle.splits["train"][0]
  out = bundle.train_augment(example, np.random.default_rng(0))
  assert out["inputs"].shape == example["inputs"].shape and out["inputs"].flags.c_contiguous
  np.testing.assert_array_equal(out["targets"], example["targets"])


def test_evaluate_shot_and_balanced_metrics(agedb_dir):
  bundle = data_registry.get_data(fixtures_age.data_config(agedb_dir), seed=0)
  labels = np.array([ex["targets"][0] for ex in bundle.splits["test"]])
  preds = labels + np.where(labels > 40, 2.0, -1.0)
  out = bundle.evaluate("test", preds[:, None])
  # Fixture: every age has < 20 training samples → all test samples are few-shot.
  assert out["few"]["count"] == len(labels) and out["many"]["count"] == 0
  np.testing.assert_allclose(out["all"]["mae"], np.abs(preds - labels).mean())
  per_age = [np.abs(preds - labels)[labels == a].mean() for a in np.unique(labels)]
  np.testing.assert_allclose(out["balanced"]["bmae"], np.mean(per_age))


def test_missing_data_dir_names_it(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist.*agedb.csv.*ibug.doc.ic.ac.uk"):
    data_registry.get_data(fixtures_age.data_config(str(tmp_path / "nowhere")), seed=0)


def test_missing_csv_names_it(tmp_path):
  with pytest.raises(FileNotFoundError, match="agedb.csv not found"):
    data_registry.get_data(fixtures_age.data_config(str(tmp_path)), seed=0)


def test_missing_images_counted_and_named(agedb_dir):
  table = pd.read_csv(os.path.join(agedb_dir, "agedb.csv"))
  gone = table["path"][:3].tolist()
  for p in gone:
    os.remove(os.path.join(agedb_dir, p))
  with pytest.raises(FileNotFoundError, match=f"3 of {len(table)} images .*missing") as err:
    data_registry.get_data(fixtures_age.data_config(agedb_dir), seed=0)
  assert all(p in str(err.value) for p in gone)


def test_corrupt_image_named_at_read_time(agedb_dir):
  table = pd.read_csv(os.path.join(agedb_dir, "agedb.csv"))
  train = table[table["split"] == "train"].reset_index(drop=True)
  with open(os.path.join(agedb_dir, train["path"][1]), "wb") as f:
    f.write(b"\xff\xd8 not a jpeg")
  bundle = data_registry.get_data(fixtures_age.data_config(agedb_dir), seed=0)  # construction is fine
  bundle.splits["train"][0]
  with pytest.raises(ValueError, match="corrupt or unreadable image .*" + train["path"][1]):
    bundle.splits["train"][1]


@pytest.mark.parametrize("bad_age", ["-1", "250", "nan", "abc"])
def test_bad_label_names_the_row(agedb_dir, bad_age):
  csv = os.path.join(agedb_dir, "agedb.csv")
  lines = open(csv).read().splitlines()
  fields = lines[5].split(",")
  lines[5] = ",".join([bad_age] + fields[1:])
  open(csv, "w").write("\n".join(lines) + "\n")
  with pytest.raises(ValueError, match=f"line 6 \\({fields[1]}\\).*outside \\[0.0, 200.0\\]"):
    data_registry.get_data(fixtures_age.data_config(agedb_dir), seed=0)


def test_unknown_split_and_missing_column(agedb_dir):
  csv = os.path.join(agedb_dir, "agedb.csv")
  table = pd.read_csv(csv)
  table.loc[0, "split"] = "dev"
  table.to_csv(csv, index=False)
  with pytest.raises(ValueError, match="unknown split value.*dev"):
    data_registry.get_data(fixtures_age.data_config(agedb_dir), seed=0)
  table.drop(columns=["split"]).to_csv(csv, index=False)
  with pytest.raises(ValueError, match="lacks column.*split"):
    data_registry.get_data(fixtures_age.data_config(agedb_dir), seed=0)


def test_grain_pipeline_with_workers_decodes_batches(agedb_dir):
  import grain
  bundle = data_registry.get_data(fixtures_age.data_config(agedb_dir, img_size=16), seed=0)
  ds = bundle.splits["train"].seed(0).shuffle().random_map(bundle.train_augment).batch(4)
  batches = list(ds.to_iter_dataset(grain.ReadOptions(num_threads=2)))
  assert sum(len(b["targets"]) for b in batches) == len(bundle.splits["train"])
  assert batches[0]["inputs"].shape == (4, 16, 16, 3)


# ---- the real agedb.csv (labels only; image files are empty placeholders) -------------------------

@pytest.fixture
def real_agedb(shared_data_dir, tmp_path):
  csv = os.path.join(shared_data_dir, "agedb-dir", "agedb.csv")
  if not os.path.isfile(csv):
    pytest.skip("agedb.csv not in the shared data folder")
  root = tmp_path / "agedb_real"
  (root / "AgeDB").mkdir(parents=True)
  shutil.copy(csv, root / "agedb.csv")
  for path in pd.read_csv(csv)["path"]:
    (root / path).touch()
  return str(root)


def test_real_agedb_counts_histogram_and_shots(real_agedb):
  bundle = data_registry.get_data(fixtures_age.data_config(real_agedb), seed=0)
  assert {s: len(d) for s, d in bundle.splits.items()} == {"train": 12208, "val": 2140, "test": 2140}
  np.testing.assert_array_equal(np.bincount(bundle.train_labels.astype(int), minlength=102),
                                AGEDB_TRAIN_COUNTS)
  test_labels = pd.read_csv(os.path.join(real_agedb, "agedb.csv")).query("split == 'test'")["age"].to_numpy()
  out = bundle.evaluate("test", test_labels.astype(np.float32) + 1.0)
  assert (out["many"]["count"], out["medium"]["count"], out["few"]["count"]) == (1530, 448, 162)
  train_count = np.asarray(AGEDB_TRAIN_COUNTS + [0] * 100)
  ages = np.unique(test_labels)
  assert (np.sum(train_count[ages] > 100), np.sum((train_count[ages] >= 20) & (train_count[ages] <= 100)),
          np.sum(train_count[ages] < 20)) == (51, 16, 25)
  assert out["all"]["mae"] == pytest.approx(1.0)


def test_balanced_split_rule_on_real_agedb(shared_data_dir):
  csv = os.path.join(shared_data_dir, "agedb-dir", "agedb.csv")
  if not os.path.isfile(csv):
    pytest.skip("agedb.csv not in the shared data folder")
  table = pd.read_csv(csv)
  split = age.balanced_split(table["age"].to_numpy(), table["path"].tolist(), max_size=30)
  assert np.array_equal(split, age.balanced_split(table["age"].to_numpy(), table["path"].tolist(), max_size=30))
  for name in ("val", "test"):
    ours = np.bincount(table["age"][split == name], minlength=121)
    official = np.bincount(table["age"][table["split"] == name], minlength=121)
    np.testing.assert_array_equal(ours, official)  # min(total // 3, 30) per age, as the official file
  assert (split == "train").sum() == 12208


def _resampled(root: str, method: str, seed: int = 0):
  config = fixtures_age.data_config(root)
  config.resample.method = method
  return config, data_registry.get_data(config, seed=seed)


@pytest.fixture(scope="module")
def tail_dir(tmp_path_factory):
  """Ages with a rare high tail (99 is a box-plot outlier) so SMOTER / SMOGN have bumps to grow."""
  return fixtures_age.make_agedb(str(tmp_path_factory.mktemp("tail") / "agedb"),
                                 train_counts={3: 2, 20: 4, 35: 6, 60: 3, 99: 1})


@pytest.mark.parametrize("method", ["smoter", "smogn"])
def test_resampled_training_set_meets_the_relevance_and_bump_invariants(tail_dir, method):
  """Checked on the bundle's faces and labels alone (no second planning call), by hand on the tail
  fixture's 16 training ages 3×2, 20×4, 35×6, 60×3, 99×1: midpoint quartiles 20 / 35 / 47.5, IQR 27.5,
  so 99 is the only box-plot outlier; relevance control points (3, 0), (35, 0), (60, 1) with zero
  slopes give φ ≥ 0.5 exactly for ages ≥ 47.5. Two bumps, "balance" goal round(16 / 2) = 8 each: the
  normal bump (12 faces) is under-sampled to 8 distinct originals, the rare one (4) keeps its faces
  and gets one synthetic face per seed. SMOTER: x = x_s + u·(x_nn − x_s), y = (1 − u)·y_s + u·y_nn
  inside the rare bump. SMOGN: random faces are never "safe" neighbours (pairwise distances ≈ all
  equal > median / 2), so each is x_s + 0.02·std_bump(x)·ε, y = y_s + 0.02·std_bump(y)·ε'."""
  _, bundle = _resampled(tail_dir, method, seed=3)
  table = pd.read_csv(os.path.join(tail_dir, "agedb.csv"))
  train = table[table["split"] == "train"]
  ages = train["age"].to_numpy(np.float64)
  faces = np.stack([_oracle_image(os.path.join(tail_dir, p), 32) for p in train["path"]])
  rare = np.flatnonzero(ages >= 47.5)
  assert sorted(ages[rare]) == [60, 60, 60, 99]
  source = bundle.splits["train"]
  elements = [source[i] for i in range(len(source))]
  labels = np.array([e["targets"][0] for e in elements])
  np.testing.assert_allclose(bundle.train_labels, labels, rtol=1e-6)
  assert len(elements) == 16 and (labels < 47.5).sum() == 8 and (labels >= 47.5).sum() == 8

  originals, synthetic = [], []
  for element in elements:
    match = np.flatnonzero(np.abs(faces - element["inputs"]).reshape(len(faces), -1).max(1) < 1e-5)
    (originals if len(match) else synthetic).append((element, match[:1]))
  kept = np.concatenate([m for _, m in originals])
  assert len(set(kept)) == len(kept) == 12 and set(rare) <= set(kept)
  assert all(e["targets"][0] == ages[m[0]] for e, m in originals)
  assert len(synthetic) == 4

  seeds = []
  for element, _ in synthetic:
    x, y = element["inputs"].astype(np.float64), float(element["targets"][0])
    if method == "smoter":
      fits = []
      for s in rare:
        for p in rare[rare != s]:
          u = np.sum((x - faces[s]) * (faces[p] - faces[s])) / np.sum((faces[p] - faces[s]) ** 2)
          if 0 <= u < 1 and np.abs(faces[s] + u * (faces[p] - faces[s]) - x).max() < 1e-4:
            fits.append((s, u, p))
      assert fits, "a SMOTER face is not on a segment between two rare faces"
      assert all(y == pytest.approx((1 - u) * ages[s] + u * ages[p], abs=1e-3) for s, u, p in fits)
      seeds.extend(sorted({e for s, _, p in fits for e in (s, p)}))  # seed and partner are interchangeable
      continue
    else:
      s = rare[np.argmin([np.sum((x - faces[r]) ** 2) for r in rare])]
      std = faces[rare].std(axis=0)
      z = ((x - faces[s]) / (0.02 * std))[std > 0.05]
      assert abs(z.mean()) < 0.1 and abs(z.std() - 1) < 0.1, (z.mean(), z.std())
      assert abs(y - ages[s]) < 5 * 0.02 * ages[rare].std()
    seeds.append(s)
  # Every rare face seeds one synthetic face (SMOTER: it is an end of at least one segment).
  assert sorted(seeds) == sorted(rare) if method == "smogn" else set(seeds) == set(rare)


def test_resampling_keeps_the_evaluation_and_its_shots(tail_dir):
  _, plain = _resampled(tail_dir, "")
  _, resampled = _resampled(tail_dir, "smoter")
  assert len(resampled.splits["test"]) == len(plain.splits["test"])
  preds = np.linspace(0, 100, len(plain.splits["test"]))
  assert resampled.evaluate("test", preds) == plain.evaluate("test", preds)
  with pytest.raises(ValueError, match="unknown method 'smogm'"):
    _resampled(tail_dir, "smogm")
