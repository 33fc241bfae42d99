"""Dist Loss and BSAM experiment configs (IMDB-WIKI-DIR / AgeDB-DIR): the reference hyper-parameters
the docstrings cite, and one real training step of each on the tiny age fixture."""

import importlib

import pytest

from tests import test_age_configs
from tests.test_age_configs import age_root, vanilla_runs  # noqa: F401 (fixtures)

DIST = [f"{d}_dist_loss" for d in ("agedb", "imdb")]
DIST_RRT = [f"{d}_dist_loss_rrt" for d in ("agedb", "imdb")]
BSAM = [f"{d}_bsam" for d in ("agedb", "imdb")]


def load(name, arg=""):
  return importlib.import_module(f"configs.{name}").get_config(arg)


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
  # 0.0765 = lr 0.0153 / wd 1.307e-3 on our mean-1 SQINV weights, cosine.
  c = load(name)
  assert c.optimizer.sam_rho == rho and c.model.name == "resnet18" and c.batch_size == 256 and c.num_epochs == 400
  assert c.optimizer.name == "sgd" and c.optimizer.momentum == 0.9 and c.optimizer.schedule == "cosine"
  assert abs(c.optimizer.lr - 0.0153) < 1e-9 and abs(c.optimizer.weight_decay - 1.0e-4 / 0.0765) < 1e-12
  assert c.reweight.method == "sqrt_inv" and not c.reweight.lds


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
