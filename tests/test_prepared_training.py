"""The trainer on prepared age splits (`data.prepared_dir`): cache checks, device transform against the host
path, batch positions and a run from the cache against one from the original images."""

import importlib
import os

import jax
import numpy as np
import pandas as pd
import pytest

from dirjax import data, sharding
from dirjax.data import age, images, pipeline, prepared
from scripts import prepare_data
from tests import fixtures_age

SIZE = 32


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
  """(data_dir, prepared_dir) of a small AgeDB fixture prepared at 32²."""
  root = fixtures_age.make_agedb(str(tmp_path_factory.mktemp("agedb") / "data"))
  out = str(tmp_path_factory.mktemp("cache"))
  prepare_data.prepare_age_splits("agedb_dir", root, out, SIZE)
  return root, out


def bundles(root, out):
  config = fixtures_age.data_config(root, img_size=SIZE)
  on_the_fly = data.get_data(config, seed=0)
  config.prepared_dir = out
  return on_the_fly, data.get_data(config, seed=0)


def test_eval_inputs_equal_the_on_the_fly_path_and_labels_come_from_the_table(cached):
  host, device = bundles(*cached)
  assert device.train_augment is None and device.device_transform is not None
  for split in ("train", "val", "test"):
    np.testing.assert_array_equal(device.targets(split), host.targets(split))
    raw = np.stack([device.splits[split][i]["inputs"] for i in range(len(device.splits[split]))])
    assert raw.dtype == np.uint8
    out = device.device_transform({"inputs": raw}, None, 0)["inputs"]
    expected = np.stack([host.splits[split][i]["inputs"] for i in range(len(host.splits[split]))])
    np.testing.assert_array_equal(np.asarray(out), expected)  # bit-equal: same pixels, same normalisation


def test_train_transform_is_the_host_crop_flip_at_the_drawn_corners(cached):
  from dirjax.data import device_augment
  host, device = bundles(*cached)
  raw = np.stack([device.splits["train"][i]["inputs"] for i in range(8)])
  positions = np.arange(40, 48, dtype=np.int32)
  out = np.asarray(device.device_transform({"inputs": raw, "position": positions}, 3, np.int32(2))["inputs"])
  top, left, flip = (np.asarray(a) for a in device_augment.crop_flip_params(3, np.int32(2), positions))
  for i in range(8):
    expected = images.crop_flip(host.splits["train"][i]["inputs"], int(top[i]), int(left[i]), bool(flip[i]))
    np.testing.assert_array_equal(out[i], expected)
  again = device.device_transform({"inputs": raw, "position": positions + 1}, 3, np.int32(2))["inputs"]
  assert not np.array_equal(np.asarray(again), out)  # other positions, other crops


def test_loader_positions_are_the_rows_index_in_the_epoch_and_resume_exactly(cached):
  _, device = bundles(*cached)
  mesh = sharding.make_mesh((-1,), ("data",))
  loader = pipeline.Loader(device.splits["train"], batch_size=8, mesh=mesh, shuffle=True, seed=5, positions=True)
  batches = [jax.device_get(b) for b in loader(1)]
  assert len(batches) == loader.steps_per_epoch
  for step, batch in enumerate(batches):
    np.testing.assert_array_equal(batch["position"], step * 8 + np.arange(8))
  resumed = jax.device_get(next(iter(loader(1, 2))))
  for key in ("inputs", "position", "valid", "targets"):
    np.testing.assert_array_equal(resumed[key], batches[2][key])


def test_cache_errors_name_the_problem(cached, tmp_path):
  root, out = cached
  config = fixtures_age.data_config(root, img_size=SIZE)
  config.prepared_dir = str(tmp_path / "nothing")
  with pytest.raises(FileNotFoundError, match=r"no prepared split at .*train\.json.*--prepare_to"):
    data.get_data(config, seed=0)
  config.prepared_dir, config.img_size = out, 16
  with pytest.raises(ValueError, match="holds 32² images, not 16²"):
    data.get_data(config, seed=0)
  table = pd.read_csv(os.path.join(root, "agedb.csv"))
  other = pd.concat([table.loc[table["split"] == "train"].iloc[1:], table.loc[table["split"] != "train"]])
  other.to_csv(os.path.join(root, "other.csv"), index=False)
  config.img_size, config.csv = SIZE, "other.csv"
  with pytest.raises(ValueError, match="prepared from other split files"):
    data.get_data(config, seed=0)
  config.csv, config.resample.method = "agedb.csv", "smoter"
  with pytest.raises(ValueError, match="cannot be combined"):
    data.get_data(config, seed=0)


def test_an_interrupted_preparation_is_incomplete_and_resumes(cached, tmp_path):
  root, _ = cached
  table = pd.read_csv(os.path.join(root, "agedb.csv"))
  paths = table["path"].tolist()
  bad = os.path.join(tmp_path, "bad.jpg")
  with open(bad, "wb") as f:
    f.write(b"not a jpeg")
  prefix = str(tmp_path / "c" / "all")
  broken = [*paths[:3], os.path.relpath(bad, root)]
  with pytest.raises(ValueError, match=r"1 image\(s\) corrupt"):
    prepared.prepare_split(root, broken, SIZE, prefix, shard_rows=2, progress=lambda m: None)
  assert os.path.exists(prepared.shard_paths(prefix, 4, 2)[0])  # the first shard is complete, the split is not
  with pytest.raises(ValueError, match="incomplete"):
    prepared.open_split(prefix, broken, np.zeros(4), SIZE)
  with pytest.raises(ValueError, match="cannot resume into this prepared split"):
    prepared.prepare_split(root, paths[:3], SIZE, prefix, progress=lambda m: None)
  fixtures_age.write_jpeg(bad, np.random.default_rng(0))
  prepared.prepare_split(root, broken, SIZE, prefix, shard_rows=2, progress=lambda m: None)
  assert len(prepared.open_split(prefix, broken, np.zeros(4), SIZE)) == 4


def smoke_config(root, out, workdir_seed=0):
  c = importlib.import_module("configs.agedb_vanilla").get_config("smoke")
  c.data.data_dir, c.data.prepared_dir, c.seed = root, out, workdir_seed
  return c


def test_a_run_from_the_cache_trains_evaluates_and_resumes_exactly(cached, tmp_path):
  from dirjax import train
  root, out = cached
  c = smoke_config(root, out)
  c.num_epochs, c.fds.enabled, c.fds.start_update = 2, True, 0  # FDS pass on augmented train batches too
  c.checkpoint.every_steps = 1  # the cut run resumes mid-epoch, at its data position
  full = train.train_and_evaluate(c, str(tmp_path / "full"))
  assert full["test"]["all"]["count"] == 14 and np.isfinite(full["test"]["all"]["mae"])
  train.train_and_evaluate(c, str(tmp_path / "cut"), stop_after_steps=4)  # epoch 1, batch 1 of 3
  resumed = train.train_and_evaluate(c, str(tmp_path / "cut"))
  assert resumed["test"]["all"]["mae"] == full["test"]["all"]["mae"]
  np.testing.assert_array_equal(np.load(tmp_path / "cut" / "predictions_test.npz")["preds"],
                                np.load(tmp_path / "full" / "predictions_test.npz")["preds"])


def test_predictions_of_one_state_are_the_same_from_the_cache_and_the_images(cached):
  from dirjax import train
  root, out = cached
  cached_run = train.Experiment(smoke_config(root, out))
  images_run = train.Experiment(smoke_config(root, ""))
  state = cached_run.init_state()["model"]
  for split in ("val", "test"):
    np.testing.assert_allclose(cached_run.predictions(state, split)["preds"],
                               images_run.predictions(state, split)["preds"], rtol=1e-6, atol=1e-6)


def test_worker_processes_give_the_in_process_batches(cached):
  _, device = bundles(*cached)
  mesh = sharding.make_mesh((-1,), ("data",))
  common = dict(batch_size=8, mesh=mesh, shuffle=True, seed=2, positions=True)
  local = [jax.device_get(b) for b in pipeline.Loader(device.splits["train"], **common)(3, 1)]
  workers = [jax.device_get(b) for b in pipeline.Loader(device.splits["train"], num_workers=1, **common)(3, 1)]
  assert len(workers) == len(local) == 3
  for a, b in zip(workers, local):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  with pytest.raises(ValueError, match="input_workers must be >= 0"):
    pipeline.Loader(device.splits["train"], num_workers=-1, **common)


def test_preparing_the_real_agedb_split_file_with_stand_in_images(shared_data_dir, tmp_path, capsys):
  """The upstream agedb.csv (16,488 rows) with generated 8×8 stand-ins (a distinct flat colour per row):
  missing and corrupt images all named, then row counts, record order = CSV order, and a bundle from the cache."""
  from PIL import Image
  csv = os.path.join(shared_data_dir, "agedb-dir", "agedb.csv")
  if not os.path.isfile(csv):
    pytest.skip("agedb.csv not in the shared data folder")
  root = tmp_path / "agedb"
  (root / "AgeDB").mkdir(parents=True)
  table = pd.read_csv(csv)
  table.to_csv(root / "agedb.csv", index=False)
  for i, path in enumerate(table["path"]):
    Image.fromarray(np.full((8, 8, 3), (i % 251, i // 251 % 251, 0), np.uint8)).save(root / path, quality=100)
  train_rows = np.flatnonzero(table["split"] == "train")
  missing, corrupt = table["path"][train_rows[50]], [table["path"][7], table["path"][16000]]  # all in train
  os.remove(root / missing)
  for path in corrupt:
    (root / path).write_bytes(b"\xff\xd8 truncated")
  out = str(tmp_path / "cache")
  with pytest.raises(ValueError) as error:
    prepare_data.prepare_age_splits("agedb_dir", str(root), out, 8)
  named = [p for p in table["path"] if p in str(error.value)]
  assert sorted(named) == sorted([missing, *corrupt]), named  # every bad image, and only those, in one run
  assert str(error.value).count("missing") == 1 and str(error.value).count("corrupt") >= 1
  for i in (7, train_rows[50], 16000):
    Image.fromarray(np.full((8, 8, 3), (i % 251, i // 251 % 251, 0), np.uint8)).save(root / table["path"][i])
  assert prepare_data.main(["--dataset=agedb_dir", f"--data_dir={root}", f"--prepare_to={out}", "--img_size=8"]) == 0
  config = fixtures_age.data_config(str(root), img_size=8)
  config.prepared_dir = out
  bundle = data.get_data(config, seed=0)
  assert {s: len(d) for s, d in bundle.splits.items()} == {"train": 12208, "val": 2140, "test": 2140}
  for split in ("train", "val", "test"):
    rows = table[table["split"] == split].reset_index(drop=True)
    for i in (0, 1, len(rows) // 2, len(rows) - 1):
      np.testing.assert_array_equal(bundle.splits[split][i]["inputs"],
                                    images.load_rgb(str(root / rows["path"][i]), 8))
      assert bundle.splits[split][i]["targets"][0] == rows["age"][i]
