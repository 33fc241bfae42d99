"""Own data without a module: `tabular` and `image_folder` sources, the balanced carving, the registry."""

import os

import ml_collections
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dirjax import data as data_lib
from dirjax.data import own


def carve_oracle(bins, per_bin, seed):
  """Per bin, in the order of one seeded permutation: c = min(n // 3, per_bin) rows to val, c to test."""
  out = np.full(len(bins), "train", dtype=object)
  perm = np.random.default_rng(seed).permutation(len(bins))
  for b in np.unique(bins):
    members = [i for i in perm if bins[i] == b]
    c = min(len(members) // 3, per_bin)
    out[members[:c]] = "val"
    out[members[c:2 * c]] = "test"
  return out


def test_balanced_carve_matches_the_per_bin_oracle():
  bins = np.random.default_rng(0).zipf(1.6, 3000) % 40  # long-tailed bin counts, some bins of 1-2 rows
  splits = own.balanced_carve(bins, per_bin=25, seed=3)
  np.testing.assert_array_equal(splits, carve_oracle(bins, 25, 3))
  for b in np.unique(bins):
    n = int((bins == b).sum())
    assert (splits[bins == b] == "val").sum() == (splits[bins == b] == "test").sum() == min(n // 3, 25)
  assert not np.array_equal(splits, own.balanced_carve(bins, 25, seed=4))


def table_config(path, **overrides):
  return ml_collections.ConfigDict({"name": "tabular", "path": str(path), "target": "y", **overrides})


@pytest.fixture
def table(tmp_path):
  rng = np.random.default_rng(0)
  n = 600
  y = np.round(rng.exponential(3.0, n), 2)
  frame = pd.DataFrame({"a": rng.normal(5.0, 2.0, n), "b": rng.integers(0, 4, n), "city": rng.choice(["x", "y"], n),
                        "y": y})
  return frame


def test_tabular_csv_carves_standardises_and_evaluates(tmp_path, table):
  path = tmp_path / "t.csv"
  table.to_csv(path, index=False)
  bundle = data_lib.get_data(table_config(path, bin_width=0.5, per_bin=8), seed=0)
  # Oracle: 0.5-wide bins from 0, the carving above, z-scores with the training rows' statistics.
  bins = np.floor(table["y"].to_numpy() / 0.5).astype(int)
  splits = carve_oracle(bins, 8, 0)
  train = splits == "train"
  x = table[["a", "b"]].to_numpy(np.float64)  # "city" is not numeric: left out of the default features
  z = (x - x[train].mean(0)) / x[train].std(0)
  for split in ("train", "val", "test"):
    rows = bundle.splits[split].gather(np.arange(len(bundle.splits[split])))
    np.testing.assert_allclose(rows["inputs"], z[splits == split], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rows["targets"][:, 0], table["y"].to_numpy()[splits == split], rtol=1e-6)
  np.testing.assert_allclose(bundle.train_labels, table["y"].to_numpy()[train], rtol=1e-6)
  assert (bundle.binning.start, bundle.binning.bin_width) == (0.0, 0.5)
  test_y = table["y"].to_numpy()[splits == "test"]
  preds = test_y + 0.25
  metrics = bundle.evaluate("test", preds)
  assert metrics["all"]["mae"] == pytest.approx(0.25, rel=1e-5)
  assert metrics["all"]["count"] == len(test_y)


def test_tabular_user_splits_and_npz(tmp_path, table):
  table["part"] = np.where(np.arange(len(table)) % 5 == 0, "test", np.where(np.arange(len(table)) % 5 == 1, "val",
                                                                             "train"))
  path = tmp_path / "t.csv"
  table.to_csv(path, index=False)
  bundle = data_lib.get_data(table_config(path, split_column="part", features=("b",)), seed=0)
  assert len(bundle.splits["test"]) == 120 and len(bundle.splits["val"]) == 120
  np.testing.assert_allclose(bundle.splits["test"][1]["targets"], [table["y"][5]], rtol=1e-6)
  npz = tmp_path / "t.npz"
  x = np.stack([table["a"], table["b"]], 1)
  np.savez(npz, x=x, y=table["y"].to_numpy())
  bundle = data_lib.get_data(table_config(npz, features=("x",), standardize=False), seed=0)
  first = bundle.splits["train"][0]
  assert first["inputs"].shape == (2,)
  row = np.flatnonzero(np.all(np.isclose(x, first["inputs"]), axis=1))
  assert table["y"].to_numpy()[row[0]] == pytest.approx(float(first["targets"][0]))


def test_tabular_parquet(tmp_path, table):
  pytest.importorskip("pyarrow")
  table.to_parquet(tmp_path / "t.parquet")
  bundle = data_lib.get_data(table_config(tmp_path / "t.parquet", features=("a", "b")), seed=0)
  assert sum(len(bundle.splits[s]) for s in ("train", "val", "test")) == len(table)


def test_tabular_errors_name_the_problem(tmp_path, table):
  path = tmp_path / "t.csv"
  table.to_csv(path, index=False)
  with pytest.raises(FileNotFoundError, match="data.path .*nope.csv"):
    data_lib.get_data(table_config(tmp_path / "nope.csv"), seed=0)
  with pytest.raises(ValueError, match=r"no column\(s\) \['wage'\]; its columns are"):
    data_lib.get_data(table_config(path, target="wage"), seed=0)
  with pytest.raises(ValueError, match="did you mean 'bin_width'"):
    data_lib.get_data(table_config(path, bin_widht=0.5), seed=0)
  with pytest.raises(ValueError, match="feature column 'city' is not numeric"):
    data_lib.get_data(table_config(path, features=("a", "city")), seed=0)
  table.loc[7, "y"] = np.nan
  table.to_csv(path, index=False)
  with pytest.raises(ValueError, match="target column 'y' has 1 missing .* first at row 7"):
    data_lib.get_data(table_config(path), seed=0)


def test_image_folder_reads_images_and_labels(tmp_path):
  os.makedirs(tmp_path / "imgs")
  labels = np.array([1.0, 2.0, 2.5, 7.0, 3.0, 1.5, 4.0, 9.0, 2.0, 5.0])
  rows = []
  for i, label in enumerate(labels):
    Image.new("RGB", (10, 6), (int(20 * label), 0, 255)).save(tmp_path / "imgs" / f"{i}.png")
    rows.append({"file": f"imgs/{i}.png", "score": label, "split": ["train", "train", "val", "test"][i % 4]})
  pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
  config = ml_collections.ConfigDict({"name": "image_folder", "csv": str(tmp_path / "labels.csv"),
                                      "path_column": "file", "target": "score", "split_column": "split",
                                      "img_size": 8})
  bundle = data_lib.get_data(config, seed=0)
  assert [len(bundle.splits[s]) for s in ("train", "val", "test")] == [6, 2, 2]  # i % 4: 0, 1 train; 2 val; 3 test
  element = bundle.splits["val"][1]  # row 6 of the CSV
  assert element["inputs"].shape == (8, 8, 3)
  expected = (np.array([20 * 4.0, 0, 255]) / 255 - 0.5) / 0.5  # constant colour survives the resize
  np.testing.assert_allclose(element["inputs"][3, 3], expected, atol=1e-6)
  assert float(element["targets"][0]) == 4.0
  rng = np.random.default_rng(0)
  assert bundle.train_augment(bundle.splits["train"][0], rng)["inputs"].shape == (8, 8, 3)
  os.remove(tmp_path / "imgs" / "3.png")
  with pytest.raises(FileNotFoundError, match="1 of 10 images .* missing .*imgs/3.png"):
    data_lib.get_data(config, seed=0)


def test_data_name_accepts_any_importable_module(tmp_path, monkeypatch):
  (tmp_path / "my_data.py").write_text(
    "from dirjax.data import tabular\n\ndef get_data(config, *, seed):\n  raise RuntimeError('my_data reached')\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  assert data_lib.module_name("my_data") == "my_data"
  with pytest.raises(RuntimeError, match="my_data reached"):
    data_lib.get_data(ml_collections.ConfigDict({"name": "my_data"}), seed=0)
  with pytest.raises(ValueError, match="did you mean 'tabular'"):
    data_lib.module_name("tabularr")
