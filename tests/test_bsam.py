"""BSAM's sharpness-aware step (`dirjax.sam`, `config.optimizer.sam_rho`) against a hand two-pass
update in numpy (manmanjun/BSAM_for_Imbalanced_Regression `agedb/train.py`): g = ∇L(θ) with SQINV
weights, ε = ρ·g/‖g‖₂, g̃ = ∇L(θ + ε) with the same weights, θ ← θ − lr·g̃ (first SGD step), on a
tiny tanh MLP through the real trainer on the 4-device mesh and on one device."""

import os
import sys

import jax
import ml_collections
import numpy as np
import pytest

from dirjax import train

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from configs import synthetic_1d  # noqa: E402


def bsam_config(mesh_shape=(-1,), rho=0.5) -> ml_collections.ConfigDict:
  """1-D benchmark, global batch 8, a tanh MLP 1 → 4 → 1, weighted MSE, SGD (first step θ − lr·g)."""
  c = synthetic_1d.get_config("smoke")
  c.variants = ml_collections.ConfigDict()
  c.mesh.shape = mesh_shape
  c.data.num_train, c.data.num_val, c.data.num_test = 32, 16, 16
  c.model = ml_collections.ConfigDict(
    {"name": "mlp", "in_features": 1, "hidden": (4,), "out_dim": 1, "activation": "tanh", "dropout": 0.0})
  c.reweight.update({"method": "sqrt_inv", "lds": False})
  c.optimizer.update({"lr": 0.05, "schedule": "constant", "sam_rho": rho})
  c.log_every_steps = 1000
  c.lock()
  return c


def params_of(model_state):
  layer, head = model_state["encoder"]["layers"][0], model_state["head"]
  get = lambda v: np.asarray(jax.device_get(v[...]), np.float64)
  return {"w1": get(layer["kernel"]), "b1": get(layer["bias"]), "w2": get(head["kernel"]), "b2": get(head["bias"])}


def np_loss_and_grads(p, x, y, w):
  """L = mean_i w_i (f_i − y_i)², f = tanh(x W1 + b1) W2 + b2, and ∂L/∂p by hand."""
  h = np.tanh(x @ p["w1"] + p["b1"])
  err = (h @ p["w2"] + p["b2"] - y)[:, 0]
  dpred = (2.0 * w * err / len(err))[:, None]
  dpre = (dpred @ p["w2"].T) * (1.0 - h ** 2)
  return float(np.mean(w * err ** 2)), {"w2": h.T @ dpred, "b2": dpred.sum(0), "w1": x.T @ dpre, "b1": dpre.sum(0)}


def np_sqinv_weights(train_labels, y, num_bins=100, bin_width=0.1):
  """1/√n_bin per sample, scaled to mean 1 over the training samples (DIR `_prepare_weights`)."""
  bins = lambda v: np.clip(np.floor(np.asarray(v, np.float64) / bin_width), 0, num_bins - 1).astype(int)
  counts = np.bincount(bins(train_labels), minlength=num_bins).astype(np.float64)
  scale = len(train_labels) / np.sum(1.0 / np.sqrt(counts[bins(train_labels)]))
  return scale / np.sqrt(counts[bins(y)])


def _one_step(config):
  experiment = train.Experiment(config)
  state = experiment.fresh_state()
  before = params_of(state["model"])
  batch = next(iter(experiment.train_loader(0)))
  counters = jax.device_put(train._zero_counters(), experiment.replicated)
  state, counters = experiment.train_step(state, batch, np.int32(0), counters)
  jax.block_until_ready(state)
  return experiment, batch, before, params_of(state["model"]), float(counters["loss"])


@pytest.fixture(scope="module")
def sharded_step():
  return _one_step(bsam_config())


def test_step_is_the_two_pass_update_with_weights_in_both_passes(sharded_step):
  experiment, batch, before, after, loss = sharded_step
  assert len(batch["inputs"].sharding.device_set) == 4 and np.asarray(batch["valid"]).all()
  x, y = (np.asarray(batch[k], np.float64) for k in ("inputs", "targets"))
  w = np_sqinv_weights(experiment.bundle.train_labels, y[:, 0])
  assert np.ptp(w) > 0.1
  value, g = np_loss_and_grads(before, x, y, w)
  norm = np.sqrt(sum(np.sum(v ** 2) for v in g.values()))
  rho, lr = 0.5, 0.05
  perturbed = {k: before[k] + rho * g[k] / (norm + 1e-16) for k in before}
  _, g_sharp = np_loss_and_grads(perturbed, x, y, w)
  np.testing.assert_allclose(loss, value, rtol=1e-5)  # the logged loss is the one at θ
  for name in before:
    np.testing.assert_allclose(after[name], before[name] - lr * g_sharp[name], rtol=1e-5, atol=1e-7, err_msg=name)
  # and it is not the plain step (the perturbation matters at this ρ)
  assert max(np.abs(g_sharp[k] - g[k]).max() for k in g) > 1e-3


def test_one_device_equals_the_mesh(sharded_step):
  _, _, _, after4, loss4 = sharded_step
  _, _, _, after1, loss1 = _one_step(bsam_config(mesh_shape=(1,)))
  np.testing.assert_allclose(loss4, loss1, rtol=1e-6)
  for name in after1:
    np.testing.assert_allclose(after4[name], after1[name], rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("rho", [-0.1, "0.05"])
def test_bad_rho(rho):
  with pytest.raises(ValueError, match="sam_rho"):
    train.Experiment(bsam_config(rho=rho))
