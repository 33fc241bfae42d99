"""ConR and Rank-N-Contrast experiment configs: the reference README hyper-parameters, and one training
step of each (stage 2 of RnC on a one-step stage-1 run) on the generated fixtures."""

import importlib

import pytest

import fixtures_nyud2
from dirjax import train
from tests.test_age_configs import age_root  # noqa: F401 (fixture)

AGE_CONR = ("agedb_conr", "imdb_conr", "agedb_sqinv_conr")
RNC = ("agedb_rnc", "imdb_rnc")


def load(name, arg=""):
  return importlib.import_module(f"configs.{name}").get_config(arg)


@pytest.mark.parametrize("name", AGE_CONR)
def test_conr_recipe(name):
  # BorealisAI/ConR {agedb,imdb-wiki}-dir/README.md: -w 1, --beta 4, -e 0.01, τ 0.07, batch 64, lr 2.5e-4.
  c = load(name)
  assert dict(c.regularizers.conr) == {"name": "conr", "weight": 4.0, "window": 1.0, "push_scale": 0.01,
                                       "temperature": 0.07, "variant": "age"}
  assert c.data.two_views and c.batch_size == 64 and c.optimizer.lr == 2.5e-4 and c.loss.name == "l1"
  assert c.num_epochs == (90 if name.startswith("imdb") else 120)
  assert c.reweight.method == ("sqrt_inv" if "sqinv" in name else "none")


def test_nyud2_conr_recipe():
  # BorealisAI/ConR nyud2-dir/README.md + train.py: -w 0.2, --beta 0.2, -e 0.2, -t 0.2, 20 epochs, ×0.1 every 5.
  c = load("nyud2_conr")
  assert dict(c.regularizers.conr) == {"name": "conr", "weight": 0.2, "window": 0.2, "push_scale": 0.2,
                                       "temperature": 0.2, "variant": "depth"}
  assert not c.data.get("two_views", False) and c.num_epochs == 20 and tuple(c.optimizer.milestones) == (5, 10, 15)
  assert c.batch_size == 32 and c.optimizer.lr == 1e-4 and c.loss.name == "mse"


@pytest.mark.parametrize("name", RNC)
def test_rnc_recipe(name):
  # kaiwenzha/Rank-N-Contrast main_rnc.py / main_linear.py defaults.
  c, probe = load(name), load(f"{name}_linear")
  assert c.model.name == probe.model.name == "resnet18"
  assert c.loss.name == "none" and dict(c.regularizers.rnc) == {"name": "rank_n_contrast", "weight": 1.0,
                                                                 "temperature": 2.0}
  assert c.data.two_views and c.batch_size == 256 and c.num_epochs == 400 and c.eval.every_epochs == 400
  assert (c.optimizer.name, c.optimizer.lr, c.optimizer.momentum, c.optimizer.weight_decay) == ("sgd", 0.5, 0.9, 1e-4)
  assert probe.loss.name == "l1" and not probe.get("regularizers") and probe.train_only == "head" and probe.init_from
  assert (probe.optimizer.name, probe.optimizer.lr, probe.optimizer.weight_decay) == ("sgd", 0.05, 0.0)
  assert probe.batch_size == 64 and probe.num_epochs == 100 and probe.optimizer.schedule == "cosine"


def _smoke(name, data_dir, workdir, **overrides):
  c = load(name, "smoke")
  c.data.data_dir = data_dir
  for key, value in overrides.items():
    c[key] = value
  result = train.train_and_evaluate(c, workdir)
  return result["test"] if "test" in result else result


@pytest.mark.parametrize("name", AGE_CONR)
def test_conr_one_step_smoke(name, age_root, tmp_path):
  test = _smoke(name, age_root, str(tmp_path))
  assert test["all"]["count"] == 10 and test["all"]["mae"] >= 0


@pytest.mark.parametrize("name", RNC)
def test_rnc_two_stage_smoke(name, age_root, tmp_path):
  _smoke(name, age_root, str(tmp_path / "stage1"))
  test = _smoke(f"{name}_linear", age_root, str(tmp_path / "stage2"), init_from=str(tmp_path / "stage1"))
  assert test["all"]["count"] == 10 and test["all"]["mae"] >= 0


def test_nyud2_conr_one_step_smoke(tmp_path):
  data_dir = fixtures_nyud2.make_nyud2(str(tmp_path / "nyud2"), n_train=4, n_test=2, n_fds=2)
  result = _smoke("nyud2_conr", data_dir, str(tmp_path / "run"))
  assert result["all"]["rmse"] >= 0
