"""Metric writers: TensorBoard event files (tensorboardX, no TensorFlow), ``metrics.jsonl``, progress line.

clu's ``metric_writers`` imports TensorFlow, hence this small replacement.
Only process 0 writes; other processes get no-op writers.
"""

from __future__ import annotations

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

  def _files(self) -> list[Any]:
    """The open outputs (none on other processes or after `close`)."""
    return [f for f in (self._jsonl, self._tb) if f is not None] if self._active else []

  def flush(self) -> None:
    for f in self._files():
      f.flush()

  def close(self) -> None:
    for f in self._files():
      f.close()
    self._active = False


def _clock(seconds: float) -> str:
  minutes, secs = divmod(int(round(seconds)), 60)
  return f"{minutes:02d}:{secs:02d}"


class ProgressLogger:
  """Logs ``step k/N (epoch e) | loss … | σ … | x.x steps/s | ETA mm:ss`` every ``log_every_steps``.

  Values may be device arrays: they are converted to Python floats (a host sync) only on the steps
  that are logged. The rate is measured since the previous logged line.
  """

  def __init__(self, total_steps: int, log_every_steps: int = 100):
    if total_steps < 1 or log_every_steps < 1:
      raise ValueError(f"total_steps and log_every_steps must be >= 1, got {total_steps}, {log_every_steps}")
    self.total_steps = total_steps
    self.log_every_steps = log_every_steps
    self._last = None

  def maybe_log(self, step: int, *, epoch: int, loss: Any, sigma: Any = None) -> str | None:
    """``step`` = number of completed steps; returns the logged line, or None when not logging."""
    if step % self.log_every_steps and step != self.total_steps:
      return None
    now = time.perf_counter()
    parts = [f"step {step}/{self.total_steps} (epoch {epoch})", f"loss {float(loss):.4g}"]
    if sigma is not None:
      parts.append(f"σ {float(sigma):.4g}")
    if self._last is not None and step > self._last[0]:
      rate = (step - self._last[0]) / max(now - self._last[1], 1e-9)
      parts += [f"{rate:.1f} steps/s", f"ETA {_clock((self.total_steps - step) / rate)}"]
    self._last = (step, now)
    line = " | ".join(parts)
    logging.info(line)
    return line
