"""Dist Loss and BSAM experiment configs (IMDB-WIKI-DIR / AgeDB-DIR): the reference hyper-parameters
the docstrings cite, and one real training step of each on the tiny age fixture."""

import csv
import importlib
import os

import numpy as np
import pytest

from tests import test_age_configs
from tests.test_age_configs import age_root, vanilla_runs  # noqa: F401 (fixtures)

DIST = [f"{d}_dist_loss" for d in ("agedb", "imdb")]
DIST_RRT = [f"{d}_dist_loss_rrt" for d in ("agedb", "imdb")]
BSAM = [f"{d}_bsam" for d in ("agedb", "imdb")]


def load_module(name):
  return importlib.import_module(f"configs.{name}")


def load(name, arg=""):
  return load_module(name).get_config(arg)


@pytest.mark.parametrize("name", DIST + DIST_RRT)
def test_dist_loss_reference_hyper_parameters(name):
  # Ngk03/DIR-Dist-Loss train.py defaults: batch 512, Adam 1e-3, 90 epochs, ×0.1 at 60/80, inverse weights,
  # λ 1, ε 0.1, bw 0.5, labels 0..120 step 1, balanced val MAE; stage 2 retrains the head only.
  c = load(name)
  assert c.batch_size == 512 and c.num_epochs == 90 and c.optimizer.name == "adam" and c.optimizer.lr == 1e-3
  assert c.reweight.method == "inverse" and tuple(c.reweight.inverse_clip) == (5.0, 1000.0)
  assert dict(c.regularizers.dist) == {"name": "dist_loss", "weight": 1.0, "regularization_strength": 0.1,
                                       "bw_method": 0.5, "min_label": 0.0, "max_label": 120.0, "step": 1.0,
                                       "loss": "l1"}
  assert c.eval.balanced_metric
  assert (c.train_only == "head") == (name in DIST_RRT) and bool(c.init_from) == (name in DIST_RRT)


@pytest.mark.parametrize("name, rho", [("agedb_bsam", 0.2), ("imdb_bsam", 0.05)])
def test_bsam_reference_hyper_parameters(name, rho):
  # BSAM README ρ; train.py: ResNet-18, batch 256, 400 epochs, SGD m 0.9, lr 0.2 / wd 1e-4 on weights of mean
  # m̄ (derived below) = lr 0.2·m̄ / wd 1e-4/m̄ on our mean-1 SQINV weights, cosine.
  c = load(name)
  assert c.optimizer.sam_rho == rho and c.model.name == "resnet18" and c.batch_size == 256 and c.num_epochs == 400
  assert c.optimizer.name == "sgd" and c.optimizer.momentum == 0.9 and c.optimizer.schedule == "cosine"
  mean = load_module(name).MEAN_REFERENCE_WEIGHT
  assert abs(c.optimizer.lr - 0.2 * mean) < 1e-12 and abs(c.optimizer.weight_decay - 1.0e-4 / mean) < 1e-12
  assert c.reweight.method == "sqrt_inv" and not c.reweight.lds


# IMDB-WIKI-DIR training faces per age 0..119 and in bin 120 (ages >= 120): the squares of the BSAM reference's
# manmanjun/BSAM_for_Imbalanced_Regression `imdb-wiki/imdb_sqrt_weight.pt` (√n per age).
IMDB_TRAIN_AGE_COUNTS = [
  3, 13, 17, 5, 9, 22, 36, 56, 82, 100, 123, 289, 343, 512, 620, 784, 954, 1345, 1852, 2717, 3659, 4042, 4570,
  5022, 5928, 5922, 6262, 6114, 6442, 6788, 7110, 7149, 6651, 6348, 6084, 6350, 6159, 5731, 5877, 5574, 4688, 4836,
  4429, 4216, 3712, 4205, 3360, 3138, 2758, 2653, 2333, 2321, 2032, 1743, 1812, 1442, 1329, 1298, 1335, 1289, 1132,
  918, 870, 871, 688, 703, 435, 514, 360, 383, 276, 230, 208, 138, 130, 117, 122, 101, 90, 95, 71, 67, 57, 45, 43,
  38, 26, 33, 22, 15, 21, 14, 11, 8, 5, 5, 5, 3, 3, 4, 4, 1, 2, 2, 2, 1, 0, 1, 1, 2, 2, 1, 1, 1, 1, 1, 0, 0, 0,
  1, 15]


def test_bsam_mean_reference_weight_imdb():
  # The reference's un-normalised weight of a face is 1/√n_age: its mean over the N training faces is Σ_a √n_a / N.
  counts = np.asarray(IMDB_TRAIN_AGE_COUNTS, np.float64)
  assert len(counts) == 121 and counts.sum() == 191_509  # the IMDB-WIKI-DIR training split size
  per_face = np.repeat(1 / np.sqrt(np.maximum(counts, 1)), counts.astype(int))
  assert abs(load_module("imdb_bsam").MEAN_REFERENCE_WEIGHT - per_face.mean()) < 5e-7


def test_bsam_mean_reference_weight_agedb():
  path = os.path.join(os.environ.get("DIRJAX_SHARED_DATA", ""), "agedb-dir", "agedb.csv")
  if not os.path.exists(path):
    pytest.skip(f"AgeDB-DIR split file {path} absent (set DIRJAX_SHARED_DATA)")
  with open(path) as f:
    ages = np.array([int(r["age"]) for r in csv.DictReader(f) if r["split"] == "train"])
  counts = np.bincount(np.minimum(ages, 120), minlength=121)
  per_face = np.array([1 / np.sqrt(counts[min(a, 120)]) for a in ages])
  assert len(ages) == 12_208
  assert abs(load_module("agedb_bsam").MEAN_REFERENCE_WEIGHT - per_face.mean()) < 5e-5  # 0.07647, kept as 0.0765


@pytest.mark.parametrize("name", DIST + DIST_RRT + BSAM)
def test_one_step_smoke(name, age_root, vanilla_runs, tmp_path):  # noqa: F811
  from dirjax import train
  c = load(name, "smoke")
  c.data.data_dir = age_root
  if name in DIST_RRT:
    c.init_from = vanilla_runs[name.split("_")[0]]
  result = train.train_and_evaluate(c, str(tmp_path))
  test = result["test"] if "test" in result else result
  assert test["all"]["count"] == 10 and test["all"]["mae"] >= 0
