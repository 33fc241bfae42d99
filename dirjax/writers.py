"""Metric writers: TensorBoard event files (tensorboardX, no TensorFlow), ``metrics.jsonl``, progress line.

clu's ``metric_writers`` needs TensorFlow (environment.md §1), hence this small replacement.
Only process 0 writes; other processes get no-op writers.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import jax
from absl import logging


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping):
      flat.update(_flatten(value, name + "/"))
    else:
      flat[name] = value
  return flat


def to_json(value: Any) -> Any:
  """``value`` with numpy/JAX scalars as Python numbers and NaN/inf as ``None``, so files are
  strict JSON (a NaN metric, e.g. LOG10 of a non-positive depth prediction, reads as ``null``)."""
  if isinstance(value, Mapping):
    return {str(k): to_json(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_json(v) for v in value]
  if hasattr(value, "item"):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
  """``obj`` as strict, indented JSON (see `to_json`)."""
  with open(path, "w") as f:
    json.dump(to_json(obj), f, indent=2, allow_nan=False, default=str)


class MetricWriter:
  """Writes scalars to TensorBoard and to ``workdir/metrics.jsonl``, hyper-parameters to both TB and
  ``workdir/hparams.json``. Nested dicts are flattened with ``/`` (``{"val": {"mae": 1}}`` → ``val/mae``).
  """

  def __init__(self, workdir: str | os.PathLike[str], *, enable_tensorboard: bool = True):
    self.workdir = os.fspath(workdir)
    self._active = jax.process_index() == 0
    self._tb = None
    self._jsonl = None
    if not self._active:
      return
    os.makedirs(self.workdir, exist_ok=True)
    self._jsonl = open(os.path.join(self.workdir, "metrics.jsonl"), "a")
    if enable_tensorboard:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(logdir=self.workdir)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    """One ``metrics.jsonl`` line ``{"step": step, name: value, ...}`` and one TB scalar per value.

    ``None`` (a metric of an empty shot group) is written as JSON ``null`` and skipped in TensorBoard;
    NaN/inf go to TensorBoard as they are and to ``metrics.jsonl`` as ``null`` (strict JSON).
    """
    if not self._active:
      return
    values = {k: None if v is None else float(v) for k, v in _flatten(scalars).items()}
    line = to_json({"step": int(step), **values})
    self._jsonl.write(json.dumps(line, allow_nan=False) + "\n")
    if self._tb is not None:
      for name, value in values.items():
        if value is not None:
          self._tb.add_scalar(name, value, global_step=int(step))

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    """Hyper-parameters (e.g. ``config.to_dict()``); non-scalar values are stored as strings."""
    if not self._active:
      return
    flat = {
      k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in _flatten(hparams).items()}
    write_json(os.path.join(self.workdir, "hparams.json"), dict(sorted(flat.items())))
    if self._tb is not None:
      from tensorboardX.summary import hparams as hparams_summary
      for summary in hparams_summary(flat, {}):
        self._tb.file_writer.add_summary(summary)

  def flush(self) -> None:
    if not self._active:
      return
    self._jsonl.flush()
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if not self._active:
      return
    self._jsonl.close()
    if self._tb is not None:
      self._tb.close()
    self._active = False


def _clock(seconds: float) -> str:
  hours, rest = divmod(int(round(seconds)), 3600)
  minutes, secs = divmod(rest, 60)
  return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


_VARIANT = {"index": 0, "count": 1}  # the variant being trained (set by `variant_progress`)


@contextlib.contextmanager
def variant_progress(index: int, count: int):
  """Progress lines inside this block say "variant index+1/count" and estimate the whole run's ETA
  (the remaining variants are assumed to take as many steps as this one)."""
  previous = dict(_VARIANT)
  _VARIANT.update(index=index, count=count)
  try:
    yield
  finally:
    _VARIANT.update(previous)


class ProgressLogger:
  """Logs ``[variant i/n] step k/N (epoch e) | loss … | σ … | x.x steps/s | ETA mm:ss [| run ETA mm:ss]``.

  A line is due (`due`) after the first step of the run (within seconds: it includes compiling),
  every ``log_every_steps``, at the last step, and whenever ``every_seconds`` passed since the last
  line, so slow runs report without waiting for ``log_every_steps``. Values may be device arrays:
  they are converted to Python floats (a host sync) only on the steps that are logged. The rate is
  measured since the previous logged line.
  """

  def __init__(self, total_steps: int, log_every_steps: int = 100, every_seconds: float = 30.0):
    if total_steps < 1 or log_every_steps < 1:
      raise ValueError(f"total_steps and log_every_steps must be >= 1, got {total_steps}, {log_every_steps}")
    self.total_steps = total_steps
    self.log_every_steps = log_every_steps
    self.every_seconds = every_seconds
    self._last = None
    self._start = time.perf_counter()

  def due(self, step: int) -> bool:
    """Whether ``step`` (completed steps) gets a line; a cheap host-side check, no device sync."""
    last_time = self._start if self._last is None else self._last[1]
    return (self._last is None or step % self.log_every_steps == 0 or step == self.total_steps
            or time.perf_counter() - last_time >= self.every_seconds)

  def maybe_log(self, step: int, *, epoch: int, loss: Any, sigma: Any = None) -> str | None:
    """``step`` = number of completed steps; returns the logged line, or None when not `due`."""
    if not self.due(step):
      return None
    now = time.perf_counter()
    index, count = _VARIANT["index"], _VARIANT["count"]
    prefix = f"variant {index + 1}/{count} | " if count > 1 else ""
    parts = [f"{prefix}step {step}/{self.total_steps} (epoch {epoch})", f"loss {float(loss):.4g}"]
    if sigma is not None:
      parts.append(f"σ {float(sigma):.4g}")
    if self._last is not None and step > self._last[0]:
      rate = (step - self._last[0]) / max(now - self._last[1], 1e-9)
      remaining = (self.total_steps - step) / rate
      parts += [f"{rate:.1f} steps/s", f"ETA {_clock(remaining)}"]
      if count > 1:
        parts.append(f"run ETA {_clock(remaining + (count - index - 1) * self.total_steps / rate)}")
    elif self._last is None:
      parts.append(f"first step after {now - self._start:.1f} s (incl. compiling)")
    self._last = (step, now)
    line = " | ".join(parts)
    logging.info(line)
    return line
