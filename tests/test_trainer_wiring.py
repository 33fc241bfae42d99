"""The trainer's wiring against numpy: one SGD step with per-sample weights, the "best" checkpoint
as the argmin of the logged validation metric, and the FDS statistics pass.

Each oracle re-derives its numbers from the initial parameters and the very batches the trainer
sees (a tanh MLP without dropout, so features are deterministic), never from the code under test:
SQINV+LDS weights as the reference's `_prepare_weights` (`agedb-dir/datasets.py`: √counts,
`convolve1d` with a max-normalised `gaussian_filter1d` window, scaled to mean 1 over the training
samples), `ReweightL2` of the Balanced-MSE synthetic benchmark (1/p(y) of the true label density,
normalised over the batch), and the FDS moments of `update_running_stats` (`fds.py`).
"""

import json
import os
import sys

import jax
import ml_collections
import numpy as np
import pytest
from scipy import ndimage, stats

from dirjax import train

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from configs import synthetic_1d  # noqa: E402


def wiring_config(**overrides) -> ml_collections.ConfigDict:
  """1-D benchmark, 30 training samples in global batches of 8 over 4 devices (the last batch padded),
  a tanh MLP 1 → 4 → 1 without dropout, plain MSE, SGD with momentum and a constant LR."""
  c = synthetic_1d.get_config("smoke")
  c.variants = ml_collections.ConfigDict()
  c.data.num_train, c.data.num_val, c.data.num_test = 30, 16, 16
  c.model = ml_collections.ConfigDict(
    {"name": "mlp", "in_features": 1, "hidden": (4,), "out_dim": 1, "activation": "tanh", "dropout": 0.0})
  c.optimizer.update({"lr": 0.05, "schedule": "constant"})
  c.log_every_steps = 1000
  c.update(overrides)
  c.lock()
  return c


def net_params(model_state) -> dict[str, np.ndarray]:
  """Host copies (float64) of the encoder's and the head's weights."""
  layer, head = model_state["encoder"]["layers"][0], model_state["head"]
  get = lambda v: np.asarray(jax.device_get(v[...]), np.float64)
  return {"w1": get(layer["kernel"]), "b1": get(layer["bias"]), "w2": get(head["kernel"]), "b2": get(head["bias"])}


def np_features(p: dict, x: np.ndarray) -> np.ndarray:
  return np.tanh(x @ p["w1"] + p["b1"])


def np_predict(p: dict, x: np.ndarray) -> np.ndarray:
  return np_features(p, x) @ p["w2"] + p["b2"]


def np_weighted_mse_and_grads(p: dict, x, y, w, valid) -> tuple[float, dict]:
  """L = Σ_valid wᵢ (fᵢ − yᵢ)² / #valid (`losses.mse`: the mean over the valid rows) and ∂L/∂p by hand."""
  h = np_features(p, x)
  err = (h @ p["w2"] + p["b2"] - y)[:, 0]
  n = valid.sum()
  loss = float(np.sum(np.where(valid, w * err ** 2, 0.0)) / n)
  dpred = np.where(valid, 2.0 * w * err / n, 0.0)[:, None]  # ∂L/∂fᵢ
  dpre = (dpred @ p["w2"].T) * (1.0 - h ** 2)  # through tanh
  grads = {"w2": h.T @ dpred, "b2": dpred.sum(0), "w1": x.T @ dpre, "b1": dpre.sum(0)}
  return loss, grads


def np_sqinv_lds_table(train_labels: np.ndarray, num_bins: int, bin_width: float, ks: int, sigma: float) -> np.ndarray:
  """Per-bin weights of SQINV+LDS as the reference's `_prepare_weights` builds them per sample."""
  bins = np.clip(np.floor(train_labels.astype(np.float64) / bin_width), 0, num_bins - 1).astype(int)
  counts = np.bincount(bins, minlength=num_bins).astype(np.float64)
  base = np.zeros(ks)
  base[ks // 2] = 1.0
  window = ndimage.gaussian_filter1d(base, sigma=sigma)
  window /= window.max()
  smoothed = ndimage.convolve1d(np.sqrt(counts), weights=window, mode="constant")
  per_sample = 1.0 / smoothed[bins]
  return smoothed, len(train_labels) / per_sample.sum()


@pytest.mark.parametrize("method", ["sqrt_inv_lds", "true_inverse"])
def test_one_step_moves_parameters_along_the_weighted_loss_gradient(method):
  reweight = ({"method": "sqrt_inv", "lds": True} if method == "sqrt_inv_lds" else {"method": "true_inverse"})
  config = wiring_config(reweight=reweight)
  experiment = train.Experiment(config)
  state = experiment.fresh_state()
  before = net_params(state["model"])
  batch = next(iter(experiment.train_loader(0)))
  x, y = (np.asarray(batch[k], np.float64) for k in ("inputs", "targets"))
  valid = np.asarray(batch["valid"])
  assert x.shape == (8, 1) and valid.all()  # one global batch of 8 sharded over the 4 devices

  if method == "sqrt_inv_lds":
    smoothed, scale = np_sqinv_lds_table(experiment.bundle.train_labels, num_bins=100, bin_width=0.1,
                                         ks=config.reweight.ks, sigma=config.reweight.sigma)
    w = scale / smoothed[np.clip(np.floor(y[:, 0] / 0.1), 0, 99).astype(int)]
  else:  # ReweightL2: 1/p(y) of the true N(5, 0.5²) training density, Σ w = batch size · label dims
    inverse = 1.0 / stats.norm(config.data.train_mean, config.data.train_std).pdf(y[:, 0])
    w = inverse / inverse.sum() * valid.sum()
  assert np.ptp(w) > 0.1  # the weights are far from uniform, so dropping them shows
  loss, grads = np_weighted_mse_and_grads(before, x, y, w, valid)

  counters = jax.device_put(train._zero_counters(), experiment.replicated)
  state, counters = experiment.train_step(state, batch, np.int32(0), counters)
  after = net_params(state["model"])
  # The first SGD step with momentum (optax.trace, torch SGD) is θ − lr·g.
  for name in before:
    np.testing.assert_allclose(after[name], before[name] - config.optimizer.lr * grads[name], rtol=1e-5, atol=1e-7,
                               err_msg=name)
  np.testing.assert_allclose(float(counters["loss"]), loss, rtol=1e-5)


def test_best_checkpoint_is_the_argmin_of_the_logged_validation_metric(tmp_path):
  # A large LR makes the validation MSE go up and down over the 8 evaluations.
  config = wiring_config(num_epochs=8, optimizer={"lr": 0.3, "schedule": "constant"},
                         eval={"every_epochs": 1}, checkpoint={"every_epochs": 1, "max_to_keep": 1})
  workdir = str(tmp_path)
  result = train.train_and_evaluate(config, workdir)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    logged = [json.loads(line) for line in f]
  evals = [(line["step"], line["eval/val/all/mse"]) for line in logged if "eval/val/all/mse" in line]
  steps, values = np.array([s for s, _ in evals]), np.array([v for _, v in evals])
  steps_per_epoch = 4
  np.testing.assert_array_equal(steps, steps_per_epoch * np.arange(1, 9))
  best = int(np.argmin(values))
  assert best != len(values) - 1 and best != 0  # the choice is not "the last" nor "the first"

  with open(os.path.join(workdir, "metrics.json")) as f:
    saved = json.load(f)
  assert (saved["epoch"], saved["step"]) == (best, steps[best]) == (result["epoch"], result["step"])
  assert saved["val"]["all"]["mse"] == pytest.approx(values[best], rel=1e-6)
  # The restored best state's predictions, in numpy, give the logged minimum.
  state, meta = train.Experiment(config).restore(os.path.join(workdir, "checkpoints"), "best")
  assert meta["best"]["value"] == pytest.approx(values[best], rel=1e-6)
  val = train.Experiment(config).bundle.splits["val"].gather(np.arange(16))
  pred = np_predict(net_params(state["model"]), np.asarray(val["inputs"], np.float64))
  np.testing.assert_allclose(np.mean((pred - val["targets"]) ** 2), values[best], rtol=1e-5)


def test_fds_pass_statistics_are_the_bucket_moments_of_the_raw_features():
  """Three epochs of (train steps, FDS pass). Epoch 0 = start_update: running stats := the epoch's
  per-bucket mean and unbiased variance; later epochs: running := m·running + (1 − m)·epoch stats;
  buckets without samples keep (0, 1). From epoch 1 on `*_last_epoch` hold the previous running stats."""
  config = wiring_config(fds={"enabled": True, "momentum": 0.9, "start_update": 0, "start_smooth": 1})
  experiment = train.Experiment(config)
  data = experiment.bundle.splits[experiment.bundle.fds_split]
  num_buckets, m = 10, config.fds.momentum  # synthetic_1d labels in [0, 10]: integer buckets 0..9
  running_mean, running_var = np.zeros((num_buckets, 4)), np.ones((num_buckets, 4))
  state = experiment.fresh_state()
  for epoch in range(3):
    for batch in experiment.train_loader(epoch):  # FDS calibrates the head's input from epoch 1 on
      counters = jax.device_put(train._zero_counters(), experiment.replicated)
      state, _ = experiment.train_step(state, batch, np.int32(epoch), counters)
    params = net_params(state["model"])
    index, valid = experiment.fds_loader.indices(epoch)
    assert not valid.all()  # 30 samples in batches of 8: the padded rows must stay out
    rows = data.gather(index[valid])
    features = np_features(params, np.asarray(rows["inputs"], np.float64))
    buckets = np.clip(np.floor(rows["targets"][:, 0]), 0, num_buckets - 1).astype(int)
    previous = running_mean.copy(), running_var.copy()
    factor = 0.0 if epoch == 0 else m
    for b in np.unique(buckets):
      f = features[buckets == b]
      var = f.var(0, ddof=1) if len(f) > 1 else np.zeros(4)
      running_mean[b] = factor * running_mean[b] + (1 - factor) * f.mean(0)
      running_var[b] = factor * running_var[b] + (1 - factor) * var
    assert len(np.unique(buckets)) >= 3

    state = experiment.fds_pass(state, epoch)
    fds = {k: np.asarray(v[...]) for k, v in state["model"]["fds"].items()}
    close = lambda name, expected, rtol: np.testing.assert_allclose(fds[name], expected, rtol=rtol, atol=1e-6,
                                                                    err_msg=f"{name} after epoch {epoch}")
    close("running_mean", running_mean, 1e-5)
    close("running_var", running_var, 1e-4)
    np.testing.assert_array_equal(fds["num_samples_tracked"], (epoch + 1) * np.bincount(buckets, minlength=num_buckets))
    if epoch > 0:
      close("running_mean_last_epoch", previous[0], 1e-5)
      close("running_var_last_epoch", previous[1], 1e-4)
