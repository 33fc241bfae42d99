"""Checkpointing behind one small class (as kauldron's ``Checkpointer``), on orbax ``CheckpointManager``.

Layout: ``directory/latest/<step>/`` keeps the ``max_to_keep`` most recent checkpoints and
``directory/best/<step>/`` keeps the best one (the reference's ``ckpt.pth.tar`` and
``ckpt.best.pth.tar``). Each checkpoint has two items: ``state`` (any pytree of arrays, e.g. an
``nnx.State`` holding model and optimizer; sharded arrays are fine) and ``meta`` (JSON: epoch,
data-iterator position, best metric, ...). Two managers cost one extra write when a checkpoint is
the best so far, but keep "latest" and "best" independent and obvious on disk.

Restoring checks the saved tree against the abstract target (structure, shapes, dtypes) first, so a
checkpoint of another model fails with a ``CheckpointError`` naming the mismatching paths instead of
a partial or silently reshaped restore. Orbax coordinates multi-process saving itself. Typed PRNG
keys (``nnx.Rngs``, dropout) are stored as their uint32 key data and re-wrapped on restore.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp


class CheckpointError(ValueError):
  """A checkpoint is missing, unreadable, or does not match the state it is restored into."""


def _item_handlers() -> dict[str, ocp.CheckpointHandler]:
  return {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}


def _path_name(path: tuple[Any, ...]) -> str:
  """A key path as ``"a/0/kernel/value"``; orbax's metadata tree spells tuple indices as strings."""
  return "/".join(
    str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def _mismatches(saved: Any, target: Any) -> list[str]:
  """Paths where the saved metadata tree and the abstract target differ (structure, shape, dtype)."""
  flat_saved = {_path_name(p): v for p, v in jax.tree_util.tree_leaves_with_path(saved)}
  flat_target = {_path_name(p): v for p, v in jax.tree_util.tree_leaves_with_path(target)}
  problems = [f"{k}: missing in checkpoint" for k in sorted(flat_target.keys() - flat_saved.keys())]
  problems += [f"{k}: in checkpoint but not in target" for k in sorted(flat_saved.keys() - flat_target.keys())]
  for key in sorted(flat_saved.keys() & flat_target.keys()):
    s, t = flat_saved[key], flat_target[key]
    if tuple(s.shape) != tuple(t.shape) or s.dtype != t.dtype:
      problems.append(f"{key}: checkpoint {s.dtype}{list(s.shape)} vs target {t.dtype}{list(t.shape)}")
  return problems


def _is_key(x: Any) -> bool:
  return jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def raw_keys(state: Any) -> Any:
  """Typed PRNG keys as their uint32 data: what orbax stores."""
  return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)


def abstract_raw_keys(abstract_state: Any) -> Any:
  """`raw_keys` of an abstract state (``jax.ShapeDtypeStruct`` leaves, shardings kept)."""
  def raw(x):
    if not _is_key(x):
      return x
    shape = jax.eval_shape(jax.random.key_data, x).shape
    return jax.ShapeDtypeStruct(shape, jnp.uint32, sharding=x.sharding)
  return jax.tree.map(raw, abstract_state)


def typed_keys(state: Any, abstract_state: Any) -> Any:
  """Inverse of `raw_keys` (keys use the default PRNG implementation, as ``nnx.Rngs``)."""
  return jax.tree.map(lambda x, a: jax.random.wrap_key_data(x) if _is_key(a) else x, state, abstract_state)


class Checkpointer:
  """``save`` / ``restore`` of (state pytree, JSON meta), keeping the latest and the best checkpoint."""

  def __init__(self, directory: str | os.PathLike[str], max_to_keep: int = 1):
    if max_to_keep < 1:
      raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
    self.directory = os.path.abspath(os.fspath(directory))
    self._managers = {
      which: ocp.CheckpointManager(
        os.path.join(self.directory, which),
        options=ocp.CheckpointManagerOptions(
          max_to_keep=keep, create=True,
          # Both managers save the same step; distinct barrier names keep their multi-process
          # barriers apart (orbax otherwise fails: "Barrier _async_write_complete.<step> is already ongoing").
          multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=which)),
        item_handlers=_item_handlers())
      for which, keep in (("latest", max_to_keep), ("best", 1))
    }

  def save(self, step: int, state: Any, meta: dict[str, Any], *, is_best: bool) -> None:
    """Saves asynchronously into ``latest/`` (and ``best/`` when ``is_best``); call ``wait()`` before exit."""
    args = ocp.args.Composite(state=ocp.args.StandardSave(raw_keys(state)), meta=ocp.args.JsonSave(meta))
    self._managers["latest"].save(step, args=args, force=True)
    if is_best:
      self._managers["best"].save(step, args=args, force=True)

  def latest_step(self) -> int | None:
    return self._managers["latest"].latest_step()

  def best_step(self) -> int | None:
    return self._managers["best"].latest_step()

  def restore(
      self, abstract_state: Any, which: Literal["latest", "best"] | int = "latest"
  ) -> tuple[Any, dict[str, Any]]:
    """Restores ``(state, meta)`` onto ``abstract_state``'s structure, shapes, dtypes and shardings.

    ``which`` is ``"latest"``, ``"best"`` or a step number kept in ``latest/``.
    """
    self.wait()
    if which == "best":
      manager, step = self._managers["best"], self.best_step()
    elif which == "latest" or isinstance(which, int):
      manager = self._managers["latest"]
      step = manager.latest_step() if which == "latest" else which
      if isinstance(which, int) and which not in manager.all_steps():
        raise CheckpointError(
          f"no checkpoint for step {which} in {manager.directory}; kept steps: {manager.all_steps()}")
    else:
      raise ValueError(f"which must be 'latest', 'best' or a step number, got {which!r}")
    if step is None:
      raise CheckpointError(f"no {which} checkpoint found in {manager.directory}")

    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_raw_keys(abstract_state))
    where = f"checkpoint step {step} in {manager.directory}"
    try:
      saved = manager.item_metadata(step)["state"]
    except Exception as e:  # orbax raises assorted types for unreadable metadata.
      raise CheckpointError(f"cannot read {where}: {type(e).__name__}: {e}") from e
    if saved is None:
      raise CheckpointError(f"cannot read {where}: no state metadata (incomplete or corrupt checkpoint)")
    problems = _mismatches(saved, target)
    if problems:
      shown = "\n  ".join(problems[:20]) + (f"\n  ... {len(problems) - 20} more" if len(problems) > 20 else "")
      raise CheckpointError(f"{where} does not match the target state:\n  {shown}")
    try:
      restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    except Exception as e:  # corrupt array or JSON files.
      raise CheckpointError(f"cannot restore {where}: {type(e).__name__}: {e}") from e
    return typed_keys(restored["state"], abstract_state), restored["meta"]

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are written."""
    for manager in self._managers.values():
      manager.wait_until_finished()

  def close(self) -> None:
    self.wait()
    for manager in self._managers.values():
      manager.close()

  def __enter__(self) -> Checkpointer:
    return self

  def __exit__(self, *exc: object) -> None:
    self.close()
