"""Files dirjax writes and reads back: crash-safe file helpers, metric writers (TensorBoard event files
via tensorboardX, no TensorFlow; ``metrics.jsonl``) and the progress line.

Every file dirjax writes (config, metrics, predictions, priors, data caches and masks) goes through
`atomic_file`: it is written to a temporary name in the same directory, flushed to disk and renamed
onto its final name (``os.replace``, atomic on POSIX), so a killed job leaves either the old file,
the new one, or a stray ``*.tmp-<pid>`` file (removed by the next write of that file), never a
half-written file under the real name.
Files that a crash of an older dirjax (or a copy) may still have cut short are read with `load_npz` /
`load_npy`, whose error names the file and the fix (delete it; the next run rebuilds it).

clu's ``metric_writers`` imports TensorFlow, hence this small replacement.
Only process 0 writes; other processes get no-op writers.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from typing import IO, Any

import jax
import numpy as np
from absl import logging


class CorruptFileError(ValueError):
  """A file dirjax reads back is unreadable, truncated or not what its writer writes."""


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
  """``open(path, mode)`` for writing, committed only when the block ends without an error.

  The data goes to ``<path>.tmp-<pid>`` next to ``path``, is fsynced and renamed onto ``path``; on an
  exception the temporary file is removed and ``path`` is left as it was. Temporary files of an
  earlier, killed write of ``path`` are removed first.
  """
  if mode not in ("w", "wb"):
    raise ValueError(f"atomic_file writes whole files: mode must be 'w' or 'wb', got {mode!r}")
  path = os.fspath(path)
  tmp = f"{path}.tmp-{os.getpid()}"
  for stale in glob.glob(glob.escape(path) + ".tmp-*"):  # left by a killed writer of the same file
    with contextlib.suppress(OSError):
      os.remove(stale)
  try:
    with open(tmp, mode) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def save_npz(path: str | os.PathLike[str], **arrays: Any) -> None:
  """``np.savez`` (uncompressed, no pickle) through `atomic_file`."""
  with atomic_file(path) as f:
    np.savez(f, **arrays)


def save_npy(path: str | os.PathLike[str], array: Any) -> None:
  """``np.save`` through `atomic_file`."""
  with atomic_file(path) as f:
    np.save(f, np.asarray(array), allow_pickle=False)


def write_text(path: str | os.PathLike[str], text: str) -> None:
  with atomic_file(path, "w") as f:
    f.write(text)


_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError)


def load_npz(path: str | os.PathLike[str], keys: tuple[str, ...] = (), *, fix: str) -> dict[str, np.ndarray]:
  """Every array of the ``.npz`` at ``path`` (no pickle), checking that ``keys`` are present.

  A truncated, garbled or incomplete file raises `CorruptFileError` naming the file and ``fix``
  (e.g. "delete it and re-run the preparation") instead of numpy's or zipfile's bare message.
  """
  path = os.fspath(path)
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {key: data[key] for key in data.files}
  except _READ_ERRORS as e:
    raise CorruptFileError(f"{path} is unreadable or half-written ({type(e).__name__}: {e}); {fix}") from e
  missing = [k for k in keys if k not in arrays]
  if missing:
    raise CorruptFileError(f"{path} lacks the array(s) {missing} (it has {sorted(arrays)}); {fix}")
  return arrays


def load_npy(path: str | os.PathLike[str], *, fix: str) -> np.ndarray:
  """The array in the ``.npy`` at ``path``; errors as `load_npz`."""
  path = os.fspath(path)
  try:
    array = np.load(path, allow_pickle=False)
  except _READ_ERRORS as e:
    raise CorruptFileError(f"{path} is unreadable or half-written ({type(e).__name__}: {e}); {fix}") from e
  if not isinstance(array, np.ndarray):
    raise CorruptFileError(f"{path} is an .npz archive, not the single array (.npy) expected; {fix}")
  return array


def check_writable(directory: str | os.PathLike[str], what: str = "directory") -> None:
  """Fails before any work when ``directory`` (or, if it does not exist yet, the nearest existing
  parent it would be created in) cannot take new files, by creating and deleting a probe file (a
  permission test alone misses read-only mounts and ignores root)."""
  directory = os.path.abspath(os.fspath(directory))
  existing = directory
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise NotADirectoryError(f"{what} {directory} cannot be created: {existing} is a file, not a directory")
  try:
    with tempfile.TemporaryFile(dir=existing):
      pass
  except OSError as e:
    raise PermissionError(
      f"{what} {directory} is not writable ({e.strerror}: {existing}); choose a writable location "
      "or fix its permissions") from e


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
  """``obj`` as strict, indented JSON (see `to_json`), written through `atomic_file`."""
  with atomic_file(path, "w") as f:
    json.dump(to_json(obj), f, indent=2, allow_nan=False, default=str)


def _drop_partial_last_line(path: str) -> None:
  """Cuts a line that a killed run left unfinished at the end of an append-only log."""
  if not os.path.isfile(path) or os.path.getsize(path) == 0:
    return
  with open(path, "rb+") as f:
    data = f.read()
    if not data.endswith(b"\n"):
      f.truncate(data.rfind(b"\n") + 1)


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
    jsonl = os.path.join(self.workdir, "metrics.jsonl")
    _drop_partial_last_line(jsonl)
    self._jsonl = open(jsonl, "a")
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
