"""UVOTE / VIR experiment configs: the reference READMEs' hyper-parameters and a one-step smoke run each."""

import importlib
import os

import pytest

from tests.test_age_configs import age_root  # noqa: F401 (fixture)

CONFIGS = ("agedb_uvote", "imdb_uvote", "agedb_vir", "imdb_vir")


def load(name: str, arg: str = ""):
  return importlib.import_module(f"configs.{name}").get_config(arg)


def test_uvote_reference_hyper_parameters():
  # SherryJYC/UVOTE README commands + train_gradual.py defaults (AgeDB: 2 branches, batch 64, clip [-5, 5];
  # IMDB-WIKI: 3 branches, batch 256, clip [-5, 10], α_e on head 0); Adam 1e-3, 90 epochs, ×0.1 at 60/80;
  # the log-scale layers at 0.1·lr.
  for name, heads, batch, clip, head0 in (("agedb_uvote", 2, 64, (-5, 5), False), ("imdb_uvote", 3, 256, (-5, 10), True)):
    c = load(name)
    assert (c.head.name, c.head.num_heads, c.batch_size) == ("uvote", heads, batch)
    assert c.loss.name == "uvote" and c.loss.dynamic and c.loss.head0_dynamic == head0
    assert tuple(c.loss.log_scale_clip) == clip and c.reweight.method == "none"
    assert (c.optimizer.lr, c.num_epochs, tuple(c.optimizer.milestones)) == (1e-3, 90, (60, 80))
    assert dict(c.optimizer.lr_scales) == {"head/log_scale": 0.1}  # the logvar group's 0.1·lr (L207–215)


def test_vir_reference_hyper_parameters():
  # Wang-ML-Lab/variational-imbalanced-regression rerun.py defaults (AgeDB; IMDB-WIKI takes them on the DIR batch
  # 256): SQINV + LDS (gaussian ks 5, σ 2), PRM ks 5 σ 2 momentum 0.9 from epoch 0/1, α₀ 0.3, λ 0.01, Adam 1e-3.
  for name, batch, bucket_start in (("agedb_vir", 64, 3), ("imdb_vir", 256, 0)):
    c = load(name)
    assert (c.head.name, c.loss.name, c.loss.evidential_weight, c.head.alpha0, c.batch_size) == ("vir", "vir", 0.01, 0.3, batch)
    assert (c.reweight.method, c.reweight.lds, c.reweight.ks, c.reweight.sigma) == ("sqrt_inv", True, 5, 2.0)
    assert dict(c.head.prm) == {"kernel": "gaussian", "ks": 5, "sigma": 2.0, "momentum": 0.9, "start_update": 0,
                                "start_smooth": 1}
    assert (c.data.bucket_start, c.data.bucket_num, c.fds.enabled) == (bucket_start, 100, False)
    assert (c.optimizer.lr, c.num_epochs, tuple(c.optimizer.milestones), c.optimizer.weight_decay) == (1e-3, 90, (60, 80), 0)


@pytest.mark.parametrize("name", CONFIGS)
def test_one_step_smoke(name, age_root, tmp_path):  # noqa: F811
  import numpy as np
  from dirjax import train
  c = load(name, "smoke")
  c.data.data_dir = age_root
  result = train.train_and_evaluate(c, str(tmp_path))
  assert result["test"]["all"]["count"] == 10 and result["test"]["all"]["mae"] >= 0
  saved = np.load(os.path.join(tmp_path, "predictions_test.npz"))
  assert saved["uncertainty"].shape == saved["preds"].shape == (10, 1) and np.all(saved["uncertainty"] > 0)
