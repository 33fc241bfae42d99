"""Prepared (decoded + resized once) image splits against the on-the-fly decode of the same files."""

import os

import numpy as np
import pandas as pd
import pytest

from dirjax.data import images, prepared
from tests import fixtures_age


@pytest.fixture
def agedb(tmp_path):
  root = fixtures_age.make_agedb(str(tmp_path / "agedb"))
  return root, pd.read_csv(os.path.join(root, "agedb.csv"))


def test_prepared_pixels_equal_the_on_the_fly_path_and_resume_skips_finished_shards(agedb, tmp_path, monkeypatch):
  root, table = agedb
  train = table[table["split"] == "train"].reset_index(drop=True)
  prefix = str(tmp_path / "cache" / "train")
  shards = prepared.prepare_split(root, train["path"].tolist(), 32, prefix, shard_rows=10, progress=lambda m: None)
  assert len(shards) == -(-len(train) // 10) and all(os.path.exists(s) for s in shards)
  source = prepared.PreparedSource(shards, train["age"].to_numpy(), 32)
  assert len(source) == len(train)
  for i in range(len(train)):
    row = source[i]
    assert row["inputs"].dtype == np.uint8 and row["targets"][0] == train["age"][i]
    np.testing.assert_array_equal(row["inputs"], images.load_rgb(os.path.join(root, train["path"][i]), 32))
  os.remove(shards[1])
  decodes = []
  real = images.load_rgb
  monkeypatch.setattr(images, "load_rgb", lambda *a: decodes.append(a) or real(*a))
  prepared.prepare_split(root, train["path"].tolist(), 32, prefix, shard_rows=10, progress=lambda m: None)
  assert len(decodes) == min(10, len(train) - 10)  # only the removed shard was decoded again
  np.testing.assert_array_equal(prepared.PreparedSource(shards, train["age"].to_numpy(), 32)[10]["inputs"],
                                source[10]["inputs"])


def test_missing_and_corrupt_images_are_all_named(agedb, tmp_path):
  root, table = agedb
  paths = table["path"].tolist()
  os.remove(os.path.join(root, paths[0]))
  os.remove(os.path.join(root, paths[5]))
  with pytest.raises(ValueError, match="2 image") as missing:
    prepared.prepare_split(root, paths, 16, str(tmp_path / "c" / "all"), progress=lambda m: None)
  assert paths[0] in str(missing.value) and paths[5] in str(missing.value)
  fixtures_age.write_jpeg(os.path.join(root, paths[0]), np.random.default_rng(0))
  fixtures_age.write_jpeg(os.path.join(root, paths[5]), np.random.default_rng(1))
  for p in (paths[3], paths[40]):
    with open(os.path.join(root, p), "wb") as f:
      f.write(b"not a jpeg")
  with pytest.raises(ValueError, match=r"2 image\(s\) corrupt") as corrupt:
    prepared.prepare_split(root, paths, 16, str(tmp_path / "c" / "all"), shard_rows=20, progress=lambda m: None)
  assert paths[3] in str(corrupt.value) and paths[40] in str(corrupt.value)
  written = sorted(os.listdir(tmp_path / "c"))
  assert written and not any(name.endswith(".tmp") for name in written)
  shards = [name for name in written if name.endswith(".array_record")]
  assert len(shards) == len(prepared.shard_paths("x", len(paths), 20)) - 2  # shards with a corrupt image wait


def test_source_rejects_a_split_of_another_length(agedb, tmp_path):
  root, table = agedb
  shards = prepared.prepare_split(root, table["path"].tolist()[:5], 16, str(tmp_path / "s"), progress=lambda m: None)
  with pytest.raises(ValueError, match="prepare the split again"):
    prepared.PreparedSource(shards, np.zeros(6), 16)


def test_simplejpeg_decode_gives_the_pillow_pixels(agedb, tmp_path, monkeypatch):
  """With the optional `simplejpeg` the decoded + resized pixels equal Pillow's exactly (colour and grey JPEGs)."""
  pytest.importorskip("simplejpeg")
  from PIL import Image
  root, table = agedb
  paths = [os.path.join(root, p) for p in table["path"][:20]]
  grey = str(tmp_path / "grey.jpg")
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 17), dtype=np.uint8)).save(grey, quality=85)
  paths.append(grey)
  fast = [images.load_rgb(p, s) for p in paths for s in (16, 37)]
  monkeypatch.setattr(images, "simplejpeg", None)
  for got, expected in zip(fast, [images.load_rgb(p, s) for p in paths for s in (16, 37)]):
    assert got.dtype == np.uint8 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
