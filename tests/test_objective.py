"""The objective as a sum of terms: a term from outside dirjax, named in a config, trains with the
main loss without any change to dirjax; the update equals a numpy gradient step."""

import os
import sys

import jax
import ml_collections
import numpy as np
import pytest

from dirjax import train

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from configs import synthetic_1d  # noqa: E402

TERM = "objective_terms:build_alignment"
LR, WEIGHT = 0.1, 0.5


def linear_config(regularizers: dict) -> ml_collections.ConfigDict:
  """One SGD step (8 samples, batch 8, no momentum) of the 1-D linear model with plain MSE."""
  c = synthetic_1d.get_config("smoke")
  c.variants = ml_collections.ConfigDict()
  c.optimizer.lr, c.optimizer.momentum = LR, 0.0
  c.regularizers = ml_collections.ConfigDict(regularizers)
  c.lock()
  return c


def one_step(config):
  """(w, b) before, the batch, (w, b) after one jitted training step."""
  experiment = train.Experiment(config)
  state = experiment.fresh_state()
  params = lambda s: (float(s["model"]["head"]["kernel"][...][0, 0]), float(s["model"]["head"]["bias"][...][0]))
  before = params(state)
  batch = next(iter(experiment.train_loader(0)))
  host_batch = jax.device_get(batch)
  counters = jax.device_put(train._zero_counters(), experiment.replicated)
  state, counters = experiment.train_step(state, batch, np.int32(0), counters)
  return before, host_batch, params(state), float(counters["loss"])


def test_external_term_adds_to_the_loss_and_its_gradient(tmp_path, monkeypatch):
  monkeypatch.syspath_prepend(os.path.dirname(__file__))
  config = linear_config({"align": {"name": TERM, "weight": WEIGHT}})
  (w, b), batch, (w1, b1), loss = one_step(config)
  x, y = batch["inputs"][:, 0].astype(np.float64), batch["targets"][:, 0].astype(np.float64)
  assert batch["valid"].all() and len(x) == 8
  p = w * x + b  # hidden=(): the features are the inputs themselves
  # L = mean (p − y)² + λ · mean p·x ;  dL/dw = mean 2(p − y)x + λ mean x² ;  dL/db = mean 2(p − y) + λ mean x
  np.testing.assert_allclose(loss, np.mean((p - y) ** 2) + WEIGHT * np.mean(p * x), rtol=1e-5)
  np.testing.assert_allclose(w1, w - LR * (np.mean(2 * (p - y) * x) + WEIGHT * np.mean(x * x)), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(b1, b - LR * (np.mean(2 * (p - y)) + WEIGHT * np.mean(x)), rtol=1e-5, atol=1e-6)
  # The whole run (train, checkpoint, evaluate) works with the extra term.
  result = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert np.isfinite(result["test"]["all"]["mse"])


def test_bad_term_names_fail_clearly(monkeypatch):
  monkeypatch.syspath_prepend(os.path.dirname(__file__))
  with pytest.raises(ValueError, match="unknown objective term 'ranksimm'"):
    train.Experiment(linear_config({"r": {"name": "ranksimm"}}))
  with pytest.raises(ValueError, match="cannot import 'nope' from 'objective_terms'"):
    train.Experiment(linear_config({"r": {"name": "objective_terms:nope"}}))
  with pytest.raises(ValueError, match="regularizers.r needs a 'name'"):
    train.Experiment(linear_config({"r": {"weight": 1.0}}))
