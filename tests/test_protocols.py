"""AgeDB-DIR stress-test protocols of Puetz et al. 2026 (`dirjax.data.protocols`, `data.protocol`)."""

import csv
import importlib
import os
import shutil

import numpy as np
import pytest

from dirjax.data import age, agedb, protocols
from tests import fixtures_age

SHARED = os.environ.get("DIRJAX_SHARED_DATA", "")
AGEDB = os.path.join(SHARED, "agedb-dir")
needs_files = pytest.mark.skipif(not os.path.isdir(os.path.join(AGEDB, "protocols")),
                                 reason="DIRJAX_SHARED_DATA/agedb-dir/protocols (Puetz et al. split files) not here")


def read_rows(path):
  with open(path) as f:
    return [(int(r["age"]), r["split"]) for r in csv.DictReader(f)]


def in_ranges(a, intervals):
  return any(lo <= a <= hi for lo, hi in intervals)


@needs_files
@pytest.mark.parametrize("name", list(protocols.PROTOCOLS))
def test_protocol_files_load_with_their_counts(name):
  config = fixtures_age.data_config(AGEDB)
  config.protocol = name
  csv_name = age.split_file(config, agedb.BENCHMARK)
  table = age.read_split_table(os.path.join(AGEDB, csv_name), (0.0, 200.0))
  rows = read_rows(os.path.join(AGEDB, "protocols", protocols.PROTOCOLS[name].file))
  intervals = next(iter(protocols.PROTOCOLS[name].ranges.values()))
  for split in ("train", "val", "test"):
    expected = [a for a, s in rows if s == split]
    loaded = table.loc[table["split"] == split, "age"].to_numpy()
    assert len(loaded) == len(expected)
    assert sum(in_ranges(a, intervals) for a in loaded) == sum(in_ranges(a, intervals) for a in expected)
  test_ages = [a for a, s in rows if s == "test"]
  assert all(c == 50 for c in np.unique(test_ages, return_counts=True)[1])  # 50 per test age (data README)
  if name == "blind_spot":  # the hole is empty in train and val, present in test
    assert not any(in_ranges(a, intervals) for a, s in rows if s != "test")
    assert sum(in_ranges(a, intervals) for a in test_ages) == 7 * 50


def _hist(ages):
  h = np.bincount(np.asarray(ages, np.int64), minlength=202)
  return h / h.sum()


@needs_files
@pytest.mark.parametrize("name", list(protocols.PROTOCOLS))
def test_resampling_recipe_reproduces_the_published_histograms(name):
  """Our seeded draw vs the published file: total-variation distance of the age histograms
  ≤ 0.05 (train), ≤ 0.15 (val: 10 % of train, drawn at random), ≤ 0.03 (test), sizes within 5 %."""
  with open(os.path.join(AGEDB, "agedb.csv")) as f:
    labels = np.array([int(r["age"]) for r in csv.DictReader(f)])
  rows = read_rows(os.path.join(AGEDB, "protocols", protocols.PROTOCOLS[name].file))
  draw = protocols.resample(labels, name, seed=0)
  for split, tolerance in (("train", 0.05), ("val", 0.15), ("test", 0.03)):
    published = [a for a, s in rows if s == split]
    mine = labels[draw[split]]
    assert 0.5 * np.abs(_hist(published) - _hist(mine)).sum() <= tolerance, split
    assert abs(len(mine) - len(published)) <= 0.05 * len(published), split
  again, other = protocols.resample(labels, name, seed=0), protocols.resample(labels, name, seed=1)
  assert all(np.array_equal(draw[s], again[s]) for s in draw)
  assert not np.array_equal(draw["train"], other["train"])


def test_resample_any_scalar_labels():
  """Continuous labels grouped in bins; the blind-spot hole is absent from train/val; splits disjoint."""
  rng = np.random.default_rng(0)
  labels = rng.uniform(20, 74, size=3000)
  draw = protocols.resample(labels, "blind_spot", seed=3, test_per_label=5, bin_width=1.0)
  for split in ("train", "val"):
    assert not np.any((labels[draw[split]] >= 47) & (labels[draw[split]] <= 53))
  assert np.any((labels[draw["test"]] >= 47) & (labels[draw["test"]] <= 53))
  assert not set(draw["test"]) & (set(draw["train"]) | set(draw["val"]))
  assert not set(draw["train"]) & set(draw["val"])
  with pytest.raises(ValueError, match="unknown data.protocol"):
    protocols.resample(labels, "blindspot", seed=0)


@pytest.mark.parametrize("name", list(protocols.PROTOCOLS))
def test_protocol_config_one_step(name, tmp_path):
  """One training step of each protocol config (vanilla variant) on a tiny fixture with a protocol file;
  the evaluation reports the protocol's range and SERA."""
  from dirjax import sweep
  root = fixtures_age.make_agedb(str(tmp_path / "data"), train_counts={20: 3, 30: 4, 50: 2, 80: 2})
  os.makedirs(os.path.join(root, "protocols"))
  shutil.copy(os.path.join(root, "agedb.csv"), os.path.join(root, "protocols", protocols.PROTOCOLS[name].file))
  c = importlib.import_module(f"configs.agedb_{name}").get_config("smoke")
  c.data.data_dir = root
  assert list(c.variants) == ["vanilla", "sqinv_lds", "fds"]
  summary = sweep.run_sweep(c, str(tmp_path / "run"), [0], variants=["vanilla"])
  metric = c.report.metrics[-1]
  assert metric.startswith("ranges/") and metric in summary["variants"]["vanilla"]["best"]
  result = summary["variants"]["vanilla"]["best"][metric]
  assert result["n"] == 1
  import json
  with open(tmp_path / "run" / "vanilla" / "seed0" / "metrics.json") as f:
    metrics = json.load(f)
  assert "sera" in metrics["test"]["relevance"]


def test_protocol_only_for_agedb(tmp_path):
  from dirjax.data import imdb_wiki
  config = fixtures_age.data_config(str(tmp_path), name="imdb_wiki_dir")
  config.protocol = "blind_spot"
  with pytest.raises(ValueError, match="AgeDB-DIR only"):
    age.split_file(config, imdb_wiki.BENCHMARK)
