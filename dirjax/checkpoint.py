"""Checkpointing behind one small class (as kauldron's ``Checkpointer``), on ONE orbax ``CheckpointManager``.

Layout: ``directory/<step>/`` with the items ``state`` (any pytree of arrays, e.g. an ``nnx.State``
holding model and optimizer; sharded arrays are fine), ``meta`` (JSON: epoch, data-iterator position,
best metric, ...) and ``identity`` (JSON: what the run is, see `run_identity`).

Crash rule: a step is committed as ONE unit (orbax writes it under a temporary name and renames it),
and "best" is not a second copy but a mark inside that unit: a step saved with ``is_best=True``
carries the orbax metric ``{"best_mark": step}`` (other steps -1), and the best checkpoint is the kept step with the
highest mark. The preservation policy keeps the ``max_to_keep`` most recent steps plus the best
one. A kill at any moment therefore leaves the previous committed step (with its best mark intact)
or the new one, never a "latest" whose "best" is missing (the reference's ``ckpt.pth.tar`` /
``ckpt.best.pth.tar`` pair, and our former two managers, have such a window between two writes).

Divergence rule: ``save`` refuses a state with a NaN/inf leaf (`NonFiniteStateError`) BEFORE
anything is written, so the last kept checkpoint is always finite whatever ``max_to_keep`` is.

Resume rule: `check_resume` compares the latest step's identity with the current run before the
caller writes anything; a difference stops the run with the list of changed fields (`RunMismatchError`).

Restoring checks the saved tree against the abstract target (structure, shapes, dtypes) first, so a
checkpoint of another model fails with a ``CheckpointError`` naming the mismatching paths instead of
a partial or silently reshaped restore. Orbax coordinates multi-process saving itself. Typed PRNG
keys (``nnx.Rngs``, dropout) are stored as their uint32 key data and re-wrapped on restore.
"""

from __future__ import annotations

import json
import logging as std_logging
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers


class CheckpointError(ValueError):
  """A checkpoint is missing, unreadable, or does not match the state it is restored into."""


class NonFiniteStateError(FloatingPointError):
  """A state with NaN/inf values was not saved (the last finite checkpoint is kept)."""


class RunMismatchError(ValueError):
  """A workdir's checkpoints belong to a run with another configuration, batch size or mesh."""


# Config fields that cannot change a run's result: they may differ on resume without an override
# (the difference is still recorded). Prefixes of dotted paths.
RESULT_NEUTRAL_FIELDS = ("eval_batch_size", "input_threads", "input_workers", "log_every_steps", "checkpoint.", "report.",
                         "variants")
# Identity entries that no override can change: the step numbering, the data position and the
# optimizer's schedule count steps of this size. (Another device or process count only needs the
# override: the global batches stay the same, reductions may differ by float rounding.)
FIXED_FIELDS = ("batch_size", "run.steps_per_epoch", "run.train_size")
OVERRIDE_FLAG = "checkpoint.allow_config_change"


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in tree.items():
    if isinstance(value, Mapping) and value:
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def run_identity(config: Any, *, steps_per_epoch: int, train_size: int, mesh: jax.sharding.Mesh) -> dict:
  """What a checkpoint belongs to: the config (as JSON values) and the step geometry of the run."""
  config_json = json.loads(config.to_json_best_effort()) if hasattr(config, "to_json_best_effort") else dict(config)
  return {"config": config_json,
          "run": {"steps_per_epoch": int(steps_per_epoch), "train_size": int(train_size),
                  "devices": int(mesh.devices.size), "mesh": {str(k): int(v) for k, v in mesh.shape.items()},
                  "processes": jax.process_count()}}


def identity_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
  """(field, saved value, current value) for every entry that differs; config fields are dotted
  paths (``optimizer.lr``), run fields start with ``run.``."""
  flat_saved = {**_flat(saved.get("config", {})), **_flat(saved.get("run", {}), "run.")}
  flat_current = {**_flat(current.get("config", {})), **_flat(current.get("run", {}), "run.")}
  missing = object()
  return [(k, flat_saved.get(k, "<absent>"), flat_current.get(k, "<absent>"))
          for k in sorted(flat_saved.keys() | flat_current.keys())
          if flat_saved.get(k, missing) != flat_current.get(k, missing)]


def _neutral(field: str) -> bool:
  return any(field == p or (p.endswith(".") and field.startswith(p)) for p in RESULT_NEUTRAL_FIELDS)


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


@jax.jit
def _finite_flags(leaves: list[jax.Array]) -> list[jax.Array]:
  return [jnp.all(jnp.isfinite(x)) for x in leaves]


def non_finite_paths(state: Any) -> list[str]:
  """Paths of the floating-point leaves of ``state`` holding a NaN or inf (one jitted reduction)."""
  leaves = [(p, x) for p, x in jax.tree_util.tree_leaves_with_path(state)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  flags = jax.device_get(_finite_flags([x for _, x in leaves]))
  return [_path_name(p) for (p, _), ok in zip(leaves, flags) if not ok]


def require_checkpoints(directory: str | os.PathLike[str]) -> None:
  """Fails (creating nothing) when ``directory`` holds no committed checkpoint, e.g. an evaluation
  pointed at an empty or mistyped workdir."""
  directory = os.path.abspath(os.fspath(directory))
  steps = [n for n in os.listdir(directory) if n.isdigit()] if os.path.isdir(directory) else []
  if not steps:
    raise CheckpointError(
      f"no checkpoint in {directory}" + ("" if os.path.isdir(directory) else " (no such directory)")
      + ": check the workdir path, or train it first (--mode=train)")


class _DropAbandonedReports(std_logging.Filter):
  def filter(self, record: std_logging.LogRecord) -> bool:
    return "exception was never retrieved" not in record.getMessage()


_DROP_ABANDONED = _DropAbandonedReports()


def _drop_abandoned_restore_reports() -> None:
  """On a failed restore, orbax's abandoned futures report the same error again when they are
  collected or the event loop closes (asyncio's "Future exception was never retrieved" and
  "Event loop is closed", 150+ lines): once a restore starts these reports are dropped, so the
  `CheckpointError` is the one message. Other asyncio errors still show."""
  asyncio_logger = std_logging.getLogger("asyncio")
  if _DROP_ABANDONED not in asyncio_logger.filters:
    asyncio_logger.addFilter(_DROP_ABANDONED)
  for module, name in ((sys, "unraisablehook"), (threading, "excepthook")):
    hook = getattr(module, name)
    if not getattr(hook, "dirjax_quiet", False):
      setattr(module, name, _quiet(hook))


def _quiet(hook):
  def quiet_hook(report):
    if not (isinstance(report.exc_value, RuntimeError) and "Event loop is closed" in str(report.exc_value)):
      hook(report)
  quiet_hook.dirjax_quiet = True
  return quiet_hook


class Checkpointer:
  """``save`` / ``restore`` of (state pytree, JSON meta), keeping the latest steps and the best one.

  ``identity`` (from `run_identity`) is saved with every step and compared by `check_resume`.
  Nothing is created on disk before the first ``save``: opening a missing directory reads as empty.
  """

  def __init__(self, directory: str | os.PathLike[str], max_to_keep: int = 1, *,
               identity: Mapping[str, Any] | None = None):
    if max_to_keep < 1:
      raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
    self.directory = os.path.abspath(os.fspath(directory))
    self.identity = None if identity is None else json.loads(json.dumps(identity))
    policy = checkpoint_managers.AnyPreservationPolicy([
      checkpoint_managers.LatestN(max_to_keep),
      checkpoint_managers.BestN(get_metric_fn=lambda m: m["best_mark"], n=1, keep_checkpoints_without_metrics=False),
    ])
    self._manager = ocp.CheckpointManager(
      self.directory,
      # best_fn only makes orbax write the metrics with each step; the policy decides what is kept.
      options=ocp.CheckpointManagerOptions(create=False, preservation_policy=policy, best_fn=lambda m: m["best_mark"],
                                           best_mode="max", cleanup_tmp_directories=True),
      item_handlers={"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler(),
                     "identity": ocp.JsonCheckpointHandler()})

  def save(self, step: int, state: Any, meta: dict[str, Any], *, is_best: bool) -> None:
    """Saves step ``step`` asynchronously as one unit; call ``wait()`` before exit.

    Raises `NonFiniteStateError` (nothing written) when a floating-point leaf of ``state`` is NaN/inf.
    """
    bad = non_finite_paths(state)
    if bad:
      kept = self.latest_step()
      raise NonFiniteStateError(
        f"not saving checkpoint step {step}: the state has NaN/inf values in {len(bad)} array(s), e.g. "
        f"{', '.join(bad[:5])}; " + (f"the last finite checkpoint (step {kept}) is kept in {self.directory}"
                                     if kept is not None else "no earlier checkpoint exists")
        + "; lower the learning rate or check the data")
    os.makedirs(self.directory, exist_ok=True)
    items = {"state": ocp.args.StandardSave(raw_keys(state)), "meta": ocp.args.JsonSave(meta)}
    if self.identity is not None:
      items["identity"] = ocp.args.JsonSave(self.identity)
    self._manager.save(step, args=ocp.args.Composite(**items), metrics={"best_mark": step if is_best else -1},
                       force=True)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def best_step(self) -> int | None:
    """The most recent step saved with ``is_best=True`` (always kept)."""
    self.wait()
    marked = [s for s in self._manager.all_steps() if (self._manager.metrics(s) or {}).get("best_mark", -1) >= 0]
    return max(marked) if marked else None

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def _read(self, step: int, **items: Any) -> dict[str, Any]:
    where = f"checkpoint step {step} in {self.directory}"
    try:
      return self._manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # corrupt array or JSON files; orbax raises assorted types.
      _drop_abandoned_restore_reports()
      raise CheckpointError(f"cannot restore {where}: {type(e).__name__}: {str(e)[:300]}; delete {where} "
                            "to resume from the step before it") from None

  def saved_identity(self) -> dict[str, Any] | None:
    """The identity saved with the latest step; None without checkpoints or for a step saved without one."""
    step = self.latest_step()
    if step is None or not os.path.isdir(os.path.join(self.directory, str(step), "identity")):
      return None
    return self._read(step, identity=ocp.args.JsonRestore())["identity"]

  def check_resume(self, *, allow_change: bool = False) -> list[tuple[str, Any, Any]]:
    """Compares ``identity`` with the latest step's, before the caller writes anything.

    Returns the differences (empty for a fresh or identical run). Raises `RunMismatchError` listing
    them when one can change the result and ``allow_change`` is False, or when a fixed field
    (batch size, steps per epoch, training set size) differs at all.
    """
    saved = self.saved_identity()
    if saved is None or self.identity is None:
      return []
    diffs = [d for d in identity_differences(saved, self.identity) if d[0] != OVERRIDE_FLAG]
    fixed = [d for d in diffs if d[0] in FIXED_FIELDS]
    blocking = fixed or ([d for d in diffs if not _neutral(d[0])] if not allow_change else [])
    if blocking:
      listing = "\n  ".join(f"{k}: {old!r} (checkpoints) -> {new!r} (now)" for k, old, new in blocking)
      fix = ("these fields fix the step numbering and the learning-rate schedule: train into a new workdir"
             if fixed else f"restore the saved values (config.json), train into a new workdir, or pass "
             f"--config.{OVERRIDE_FLAG}=True to continue with the new values (the change is recorded)")
      raise RunMismatchError(
        f"{self.directory} holds checkpoints of a different run (latest step {self.latest_step()}); "
        f"changed:\n  {listing}\n{fix}")
    return diffs

  def check_target(self, abstract_state: Any, which: Literal["latest", "best"] | int = "latest") -> int:
    """Checks (from metadata only) that step ``which`` can be restored onto ``abstract_state``;
    returns the step. Raises `CheckpointError` naming the mismatching paths."""
    if which == "best":
      step = self.best_step()
    elif which == "latest":
      step = self.latest_step()
    elif isinstance(which, int):
      step = which
      if which not in self.all_steps():
        raise CheckpointError(f"no checkpoint for step {which} in {self.directory}; kept steps: {self.all_steps()}")
    else:
      raise ValueError(f"which must be 'latest', 'best' or a step number, got {which!r}")
    if step is None:
      raise CheckpointError(f"no {which} checkpoint found in {self.directory}")
    where = f"checkpoint step {step} in {self.directory}"
    _drop_abandoned_restore_reports()  # before reading: orbax's reader threads may fail first
    try:
      saved = self._manager.item_metadata(step)["state"]
    except Exception as e:  # orbax raises assorted types for unreadable metadata.
      _drop_abandoned_restore_reports()
      raise CheckpointError(f"cannot read {where}: {type(e).__name__}: {str(e)[:300]}; delete {where} "
                            "to resume from the step before it") from None
    if saved is None:
      raise CheckpointError(f"cannot read {where}: no state metadata (incomplete or corrupt checkpoint)")
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_raw_keys(abstract_state))
    problems = _mismatches(saved, target)
    if problems:
      shown = "\n  ".join(problems[:20]) + (f"\n  ... {len(problems) - 20} more" if len(problems) > 20 else "")
      raise CheckpointError(f"{where} does not match the target state:\n  {shown}")
    return step

  def restore(
      self, abstract_state: Any, which: Literal["latest", "best"] | int = "latest"
  ) -> tuple[Any, dict[str, Any]]:
    """Restores ``(state, meta)`` onto ``abstract_state``'s structure, shapes, dtypes and shardings.

    ``which`` is ``"latest"``, ``"best"`` or a kept step number.
    """
    self.wait()
    step = self.check_target(abstract_state, which)
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_raw_keys(abstract_state))
    restored = self._read(step, state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())
    return typed_keys(restored["state"], abstract_state), restored["meta"]

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are written."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self.wait()
    self._manager.close()

  def __enter__(self) -> Checkpointer:
    return self

  def __exit__(self, *exc: object) -> None:
    self.close()
