"""Data parallelism on 4 fake CPU devices: the sharded step equals the single-device step, and the
Balanced-MSE loss sees the global batch. Every step is blocked (XLA:CPU collectives can
deadlock, see `sharding.needs_step_sync`)."""

import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dirjax import optim, sharding, train

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from configs import synthetic_1d  # noqa: E402


def _config(mesh_shape, loss: str) -> ml_collections.ConfigDict:
  c = synthetic_1d.get_config("smoke")
  c.variants = ml_collections.ConfigDict()
  c.mesh.shape = mesh_shape
  c.data.num_train = 16
  c.batch_size = 16
  c.model = ml_collections.ConfigDict({"name": "mlp", "in_features": 1, "hidden": (8,), "out_dim": 1})
  c.loss.name, c.loss.fix_noise_sigma, c.loss.prior = loss, False, "gmm" if loss == "gai" else ""
  c.optimizer.momentum = 0.0  # plain SGD: the first update is −lr·grad
  c.lock()
  return c


def _one_step(config):
  experiment = train.Experiment(config)
  state = experiment.fresh_state()
  params0 = {optim.path_str(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(state["model"])}
  batch = next(experiment.train_loader(0))
  counters = jax.device_put(train._zero_counters(), experiment.replicated)
  state, counters = experiment.train_step(state, batch, np.int32(0), counters)
  jax.block_until_ready(state)
  params1 = {optim.path_str(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(state["model"])}
  lr = optim.learning_rate_at(config, experiment.steps_per_epoch, 0)
  grads = {k: (params0[k] - params1[k]) / lr for k in params0}
  return float(counters["loss"]), grads, batch, params0, experiment


@pytest.mark.parametrize("loss", ["bmc", "gai", "mse"])
def test_sharded_step_matches_single_device(loss):
  assert jax.device_count() == 4
  loss4, grads4, batch, _, experiment = _one_step(_config((-1,), loss))
  assert batch["inputs"].sharding.spec == jax.sharding.PartitionSpec("data")
  assert len(batch["inputs"].sharding.device_set) == 4
  loss1, grads1, _, _, _ = _one_step(_config((1,), loss))
  np.testing.assert_allclose(loss4, loss1, rtol=1e-6)
  for key in grads1:
    np.testing.assert_allclose(grads4[key], grads1[key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_bmc_uses_the_global_batch():
  """The sharded BMC loss equals a numpy BMC over all 16 rows (not a mean of 4-row losses)."""
  loss4, _, batch, params0, _ = _one_step(_config((-1,), "bmc"))
  x = np.asarray(batch["inputs"])
  y = np.asarray(batch["targets"])[:, 0]
  hidden = np.maximum(x @ params0["encoder/layers/0/kernel"] + params0["encoder/layers/0/bias"], 0)
  pred = (hidden @ params0["head/kernel"] + params0["head/bias"])[:, 0]
  var = params0["noise_sigma"] ** 2
  logits = -(pred[:, None] - y[None, :]) ** 2 / (2 * var)
  ce = -np.diag(logits) + np.log(np.exp(logits).sum(1))
  np.testing.assert_allclose(loss4, 2 * var * ce.mean(), rtol=1e-5)
  shards = [slice(4 * s, 4 * s + 4) for s in range(4)]
  per_shard = np.mean([2 * var * np.mean(-np.diag(logits[s, s]) + np.log(np.exp(logits[s, s]).sum(1)))
                       for s in shards])
  assert abs(per_shard - loss4) > 1e-3  # a per-device BMC would be a different loss


def test_mesh_and_batch_size_errors():
  with pytest.raises(ValueError, match="must contain 'data'"):
    sharding.make_mesh((4,), ("model",))
  with pytest.raises(ValueError, match="needs 8 devices"):
    sharding.make_mesh((8,), ("data",))
  mesh = sharding.make_mesh()
  assert mesh.shape["data"] == 4
  with pytest.raises(ValueError, match="batch_size=6"):
    sharding.check_batch_size(6, mesh)
  np.testing.assert_array_equal(sharding.process_rows(16, mesh), np.arange(16))  # one process reads the whole global batch


def test_to_global_and_back():
  mesh = sharding.make_mesh()
  local = {"x": np.arange(8, dtype=np.float32).reshape(8, 1)}
  glob = sharding.to_global(local, mesh)
  assert glob["x"].shape == (8, 1) and len(glob["x"].addressable_shards) == 4
  np.testing.assert_array_equal(sharding.to_host(glob)["x"], local["x"])
  np.testing.assert_array_equal(np.asarray(jnp.sum(glob["x"])), 28.0)
