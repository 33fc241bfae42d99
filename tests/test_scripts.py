"""Data scripts: create_imdb_wiki (tiny .mat), prepare_data, preprocess_gmm, bench_input (smoke)."""

import datetime
import os

import numpy as np
import pandas as pd
from scipy.io import savemat
from sklearn.mixture import GaussianMixture

from dirjax import priors
from scripts import bench_input, create_imdb_wiki, prepare_data, preprocess_gmm
from tests import fixtures_age


def _datenum(year: int, month: int, day: int) -> float:
  """Matlab datenum of a date (days since year 0; datenum(1, 1, 1) = 367)."""
  return float(datetime.date(year, month, day).toordinal() + 366)


def _write_mat(path: str, db: str, rows: list[tuple]) -> None:
  """rows: (full_path, dob datenum, photo_taken, face_score, second_face_score)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  full_path = np.empty((1, len(rows)), dtype=object)
  for i, r in enumerate(rows):
    full_path[0, i] = np.array([r[0]])
  record = {
    "full_path": full_path,
    "dob": np.array([[r[1] for r in rows]]),
    "photo_taken": np.array([[r[2] for r in rows]], dtype=np.uint16),
    "face_score": np.array([[r[3] for r in rows]]),
    "second_face_score": np.array([[r[4] for r in rows]]),
    "gender": np.ones((1, len(rows))),
  }
  savemat(path, {db: record})


def _oracle_age(dob: float, taken: int) -> int:
  birth = datetime.date.fromordinal(max(int(dob) - 366, 1))
  return taken - birth.year - (1 if birth.month >= 7 else 0)


def test_create_imdb_wiki_filters_ages_and_split(tmp_path):
  rng = np.random.default_rng(0)
  imdb_rows, wiki_rows = [], []
  for i in range(120):
    dob = _datenum(int(rng.integers(1930, 2000)), int(rng.integers(1, 13)), int(rng.integers(1, 29)))
    imdb_rows.append((f"{i % 3:02d}/nm{i}_rm_{i}.jpg", dob, int(rng.integers(2000, 2015)), 1.0 + rng.random() * 3,
                      np.nan))
  imdb_rows += [
    ("00/lowscore.jpg", _datenum(1980, 1, 1), 2010, 0.5, np.nan),  # face_score < 1
    ("00/noface.jpg", _datenum(1980, 1, 1), 2010, -np.inf, np.nan),  # no face
    ("00/twofaces.jpg", _datenum(1980, 1, 1), 2010, 2.0, 1.5),  # second face
    ("00/weaksecond.jpg", _datenum(1980, 1, 1), 2010, 2.0, 0.0),  # second face score 0 → kept
    ("00/unborn.jpg", _datenum(2012, 1, 1), 2010, 2.0, np.nan),  # age −2
    ("00/july.jpg", _datenum(1980, 7, 1), 2010, 2.0, np.nan),  # born in July → 29
    ("00/june.jpg", _datenum(1980, 6, 30), 2010, 2.0, np.nan),  # born in June → 30
  ]
  for i in range(40):
    wiki_rows.append((f"{i % 2:02d}/w{i}.jpg", _datenum(1950 + i, 3, 3), 2011, 2.5, np.nan))
  _write_mat(str(tmp_path / "imdb_crop" / "imdb.mat"), "imdb", imdb_rows)
  _write_mat(str(tmp_path / "wiki_crop" / "wiki.mat"), "wiki", wiki_rows)
  assert create_imdb_wiki.main([f"--data_dir={tmp_path}", "--max_size=2"]) == 0
  table = pd.read_csv(tmp_path / "imdb_wiki.csv")
  assert list(table.columns) == ["age", "path", "split"]
  expected = [(f"imdb_crop/{r[0]}", _oracle_age(r[1], r[2])) for r in imdb_rows
              if r[3] >= 1.0 and not (r[4] > 0) and 0 <= _oracle_age(r[1], r[2]) <= 200]
  expected += [(f"wiki_crop/{r[0]}", _oracle_age(r[1], r[2])) for r in wiki_rows]
  assert list(zip(table["path"], table["age"])) == expected  # IMDB then WIKI, file order
  ages = dict(zip(table["path"], table["age"]))
  assert ages["imdb_crop/00/july.jpg"] == 29 and ages["imdb_crop/00/june.jpg"] == 30
  for name in ("lowscore", "noface", "twofaces", "unborn"):
    assert f"imdb_crop/00/{name}.jpg" not in ages
  totals = table["age"].value_counts()
  for split in ("val", "test"):
    counts = table[table["split"] == split]["age"].value_counts()
    for a, total in totals.items():
      assert counts.get(a, 0) == min(total // 3, 2)


def test_create_imdb_wiki_names_missing_mat(tmp_path, capsys):
  assert create_imdb_wiki.main([f"--data_dir={tmp_path}"]) == 1
  assert "imdb.mat not found" in capsys.readouterr().err


def test_prepare_data_agedb_ok_and_missing(tmp_path, capsys):
  root = fixtures_age.make_agedb(str(tmp_path / "agedb"))
  assert prepare_data.main(["--dataset=agedb_dir", f"--data_dir={root}"]) == 0
  assert "is ready" in capsys.readouterr().out
  path = pd.read_csv(os.path.join(root, "agedb.csv"))["path"][0]
  os.remove(os.path.join(root, path))
  assert prepare_data.main(["--dataset=agedb_dir", f"--data_dir={root}"]) == 1
  err = capsys.readouterr().err
  assert path in err and "ibug.doc.ic.ac.uk/resources/agedb" in err


def test_prepare_data_rebuilds_agedb_csv_from_file_names(tmp_path, capsys):
  root = fixtures_age.make_agedb(str(tmp_path / "agedb"), train_counts={20: 9, 30: 12, 40: 3})
  original = pd.read_csv(os.path.join(root, "agedb.csv"))
  os.remove(os.path.join(root, "agedb.csv"))
  assert prepare_data.main(["--dataset=agedb_dir", f"--data_dir={root}"]) == 0
  assert "rebuilt" in capsys.readouterr().out
  rebuilt = pd.read_csv(os.path.join(root, "agedb.csv"))
  assert sorted(zip(rebuilt["path"], rebuilt["age"])) == sorted(zip(original["path"], original["age"]))
  assert (rebuilt[rebuilt["age"] == 30]["split"] == "val").sum() == min(16 // 3, 30)


def test_prepare_data_imdb_names_sources(tmp_path, capsys):
  assert prepare_data.main(["--dataset=imdb_wiki_dir", f"--data_dir={tmp_path}"]) == 1
  err = capsys.readouterr().err
  assert "imdb.mat" in err and "wiki.mat" in err and "data.vision.ee.ethz.ch/cvl/rrothe/imdb-wiki" in err
  assert prepare_data.main(["--dataset=imdb_wiki_dir", f"--data_dir={tmp_path / 'nope'}"]) == 1
  assert "does not exist" in capsys.readouterr().err


def test_preprocess_gmm_age_uses_labels_only(tmp_path):
  root = fixtures_age.make_agedb(str(tmp_path / "agedb"))
  # Corrupt every image: the script must not open them.
  for p in pd.read_csv(os.path.join(root, "agedb.csv"))["path"]:
    open(os.path.join(root, p), "wb").close()
  out = str(tmp_path / "gmm.npz")
  assert preprocess_gmm.main(["--dataset=agedb_dir", f"--data_dir={root}", "--K=3", f"--out={out}"]) == 0
  prior = priors.load_prior(out, expected_kind="gmm")
  table = pd.read_csv(os.path.join(root, "agedb.csv"))
  labels = table[table["split"] == "train"]["age"].to_numpy(np.float32)[:, None]
  oracle = GaussianMixture(n_components=3, random_state=0).fit(labels)
  np.testing.assert_allclose(prior.means, oracle.means_, rtol=1e-5)
  np.testing.assert_allclose(prior.weights, oracle.weights_, rtol=1e-5)
  out_b = str(tmp_path / "bni.npz")
  assert preprocess_gmm.main(["--dataset=agedb_dir", f"--data_dir={root}", "--prior=buckets", f"--out={out_b}"]) == 0
  buckets = priors.load_prior(out_b, expected_kind="bucket")
  values, counts = np.unique(labels.astype(int), return_counts=True)
  np.testing.assert_array_equal(buckets.centers, values)
  np.testing.assert_allclose(buckets.weights, counts / counts.sum(), rtol=1e-6)


def test_preprocess_gmm_nyud2_matches_reference_fit(tmp_path):
  out = str(tmp_path / "gmm16.npz")
  assert preprocess_gmm.main(["--dataset=nyud2_dir", "--K=16", f"--out={out}"]) == 0
  prior = priors.load_prior(out, expected_kind="gmm")
  order = np.argsort(prior.means[:, 0])
  # GMM of the fixed BalancedMSE `nyud2-dir/preprocess_gmm.py` (sklearn 1.9.1, components sorted by mean).
  means = [0.2509, 0.6731, 1.0399, 1.4022, 1.8626, 2.2710, 2.6706, 3.0743, 3.5009, 3.9051, 4.3223, 4.8696,
           5.4758, 6.3057, 7.4174, 9.0686]
  variances = [0.02344, 0.02205, 0.01183, 0.02535, 0.04068, 0.02658, 0.02376, 0.02549, 0.02354, 0.02614,
               0.04224, 0.05027, 0.08295, 0.15295, 0.29770, 0.31721]
  weights = [0.0330, 0.0265, 0.0451, 0.1047, 0.1612, 0.1272, 0.1075, 0.1025, 0.0714, 0.0538, 0.0522, 0.0383,
             0.0283, 0.0242, 0.0162, 0.0082]
  np.testing.assert_allclose(prior.means[order, 0], means, atol=2e-4)
  np.testing.assert_allclose(prior.covs[order, 0, 0], variances, rtol=1e-3, atol=1e-5)
  np.testing.assert_allclose(prior.weights[order], weights, atol=2e-4)


def test_bench_input_synthetic_smoke(capsys):
  assert bench_input.main(["--synthetic=24", "--batch_size=4", "--batches=1", "--workers=0,1"]) == 0
  out = capsys.readouterr().out
  assert "images/s" in out and "decode+resize" in out


def test_bench_input_cache_smoke(capsys):
  assert bench_input.main(["--synthetic=24", "--batch_size=4", "--batches=1", "--workers=0", "--cache",
                           "--rounds=2"]) == 0
  out = capsys.readouterr().out
  assert "prepared cache (uint8, device augment)" in out and "bytes per image" in out


def test_prepare_data_writes_prepared_splits(tmp_path, capsys):
  from dirjax.data import images, prepared
  root = fixtures_age.make_agedb(str(tmp_path / "agedb"))
  out = str(tmp_path / "prepared")
  table = pd.read_csv(os.path.join(root, "agedb.csv"))
  corrupt = [table.loc[table["split"] == s, "path"].iloc[0] for s in ("train", "test")]
  for path in corrupt:
    os.rename(os.path.join(root, path), os.path.join(root, path + ".good"))
    with open(os.path.join(root, path), "wb") as f:
      f.write(b"not a jpeg")
  assert prepare_data.main(["--dataset=agedb_dir", f"--data_dir={root}", f"--prepare_to={out}", "--img_size=16"]) == 1
  err = capsys.readouterr().err
  assert all(path in err for path in corrupt)  # both splits' corrupt images in one run
  for path in corrupt:
    os.replace(os.path.join(root, path + ".good"), os.path.join(root, path))
  assert prepare_data.main(["--dataset=agedb_dir", f"--data_dir={root}", f"--prepare_to={out}", "--img_size=16"]) == 0
  for split in ("train", "val", "test"):
    rows = table[table["split"] == split].reset_index(drop=True)
    shards = prepared.shard_paths(os.path.join(out, split), len(rows), 1000)
    source = prepared.PreparedSource(shards, rows["age"].to_numpy(), 16)
    assert len(source) == len(rows)
    np.testing.assert_array_equal(source[len(rows) - 1]["inputs"],
                                  images.load_rgb(os.path.join(root, rows["path"][len(rows) - 1]), 16))
