"""Checkpointer: exact round trip (model + optimizer), latest vs best, resume, and clear errors."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from dirjax.checkpoint import Checkpointer, CheckpointError


class Net(nnx.Module):
  def __init__(self, hidden=4, *, rngs):
    self.dense = nnx.Linear(3, hidden, rngs=rngs)
    self.bn = nnx.BatchNorm(hidden, momentum=0.9, rngs=rngs)
    self.head = nnx.Linear(hidden, 1, rngs=rngs)

  def __call__(self, x):
    return self.head(nnx.relu(self.bn(self.dense(x))))


def build(seed=0, hidden=4):
  model = Net(hidden, rngs=nnx.Rngs(seed))
  return model, nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)


def trained_state():
  model, opt = build(0)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 3)), jnp.float32)
  for _ in range(3):
    grads = nnx.grad(lambda m: (m(x) ** 2).mean())(model)
    opt.update(model, grads)
  return model, opt, nnx.state((model, opt))


def abstract_state(hidden=4):
  return nnx.state(nnx.eval_shape(lambda: build(1, hidden)))


def test_round_trip_is_exact_for_model_batch_stats_and_optimizer(tmp_path):
  model, opt, state = trained_state()
  meta = {"epoch": 3, "step": 3, "best_mae": 1.25, "data": {"epoch": 3, "step": 0}, "config_hash": "ab12"}
  with Checkpointer(tmp_path) as ckpt:
    ckpt.save(3, state, meta, is_best=True)
    ckpt.wait()
    restored, restored_meta = ckpt.restore(abstract_state())
  assert restored_meta == meta
  leaves, restored_leaves = jax.tree.leaves(state), jax.tree.leaves(restored)
  assert len(leaves) == len(restored_leaves) > 10
  for a, b in zip(leaves, restored_leaves):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)
  # Merged into fresh objects, the restored model computes the same thing (BN in eval mode).
  fresh_model, fresh_opt = build(7)
  nnx.update((fresh_model, fresh_opt), restored)
  x = jnp.ones((2, 3))
  model.eval(), fresh_model.eval()
  np.testing.assert_array_equal(model(x), fresh_model(x))
  assert int(fresh_opt.step[...]) == 3


def test_latest_and_best_are_one_unit_and_survive_reopening(tmp_path):
  _, _, state = trained_state()
  with Checkpointer(tmp_path, max_to_keep=1) as ckpt:
    for step, is_best in [(1, True), (2, False), (3, True), (4, False)]:
      ckpt.save(step, state, {"epoch": step}, is_best=is_best)
    ckpt.wait()
    assert ckpt.latest_step() == 4 and ckpt.best_step() == 3
  # One directory per kept step: the latest (max_to_keep=1) and the best, no second copy.
  assert sorted(os.listdir(tmp_path)) == ["3", "4"]
  with Checkpointer(tmp_path) as ckpt:  # a resumed run sees both
    assert ckpt.latest_step() == 4 and ckpt.best_step() == 3
    assert ckpt.restore(abstract_state(), "best")[1] == {"epoch": 3}
    assert ckpt.restore(abstract_state(), 4)[1] == {"epoch": 4}
    with pytest.raises(CheckpointError, match=r"no checkpoint for step 2 in .*; kept steps: \[3, 4\]"):
      ckpt.restore(abstract_state(), 2)
    with pytest.raises(ValueError, match="which must be"):
      ckpt.restore(abstract_state(), "first")


def test_max_to_keep_keeps_the_most_recent(tmp_path):
  _, _, state = trained_state()
  with Checkpointer(tmp_path, max_to_keep=2) as ckpt:
    for step in range(1, 5):
      ckpt.save(step, state, {}, is_best=False)
    ckpt.wait()
    assert ckpt.best_step() is None
  assert sorted(os.listdir(tmp_path)) == ["3", "4"]


def test_restore_from_empty_directory_names_it(tmp_path):
  directory = tmp_path / "never_written"
  with Checkpointer(directory) as ckpt:
    with pytest.raises(CheckpointError, match=f"no latest checkpoint found in {directory}"):
      ckpt.restore(abstract_state())
    with pytest.raises(CheckpointError, match="no best checkpoint"):
      ckpt.restore(abstract_state(), "best")


def test_mismatched_shape_and_structure_are_named(tmp_path):
  _, _, state = trained_state()
  with Checkpointer(tmp_path) as ckpt:
    ckpt.save(1, state, {}, is_best=False)
    ckpt.wait()
    with pytest.raises(CheckpointError, match=r"(?s)step 1 in .* does not match.*"
                       r"dense/kernel/value: checkpoint float32\[3, 4\] vs target float32\[3, 5\]"):
      ckpt.restore(abstract_state(hidden=5))
    model_only = nnx.state(nnx.eval_shape(lambda: Net(rngs=nnx.Rngs(0))))
    with pytest.raises(CheckpointError, match=r"(?s)does not match.*missing in checkpoint"):
      ckpt.restore(model_only)


def _clobber(directory, mode):
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      if mode == "garbage":
        with open(path, "wb") as f:
          f.write(b"\x00not a checkpoint\xff" * 3)
      else:
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
          f.truncate(size // 2)


@pytest.mark.parametrize("mode", ["garbage", "truncated"])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, mode):
  _, _, state = trained_state()
  with Checkpointer(tmp_path) as ckpt:
    ckpt.save(5, state, {"epoch": 5}, is_best=False)
  _clobber(tmp_path / "5" / "state", mode)
  with Checkpointer(tmp_path) as ckpt:
    with pytest.raises(CheckpointError, match=f"checkpoint step 5 in {tmp_path}"):
      ckpt.restore(abstract_state())


def test_corrupt_meta_json_is_a_clear_error(tmp_path):
  _, _, state = trained_state()
  with Checkpointer(tmp_path) as ckpt:
    ckpt.save(2, state, {"epoch": 2}, is_best=False)
  _clobber(tmp_path / "2" / "meta", "truncated")
  with Checkpointer(tmp_path) as ckpt:
    with pytest.raises(CheckpointError, match="cannot restore checkpoint step 2"):
      ckpt.restore(abstract_state())


def test_sharded_arrays_restore_onto_the_target_sharding(tmp_path):
  mesh = jax.make_mesh((4,), ("data",))
  x = jnp.arange(32.0).reshape(8, 4)
  state = {"w": jax.device_put(x, NamedSharding(mesh, P("data"))), "b": jnp.ones(3)}
  with Checkpointer(tmp_path) as ckpt:
    ckpt.save(1, state, {}, is_best=True)
    ckpt.wait()
    replicated = NamedSharding(mesh, P())
    target = {"w": jax.ShapeDtypeStruct((8, 4), jnp.float32, sharding=replicated),
              "b": jax.ShapeDtypeStruct((3,), jnp.float32, sharding=replicated)}
    restored, _ = ckpt.restore(target, "best")
  assert restored["w"].sharding == replicated
  np.testing.assert_array_equal(restored["w"], x)
  np.testing.assert_array_equal(restored["b"], np.ones(3))
