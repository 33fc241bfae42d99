"""MetricWriter (JSONL + TensorBoard event file) and the progress line."""

import json
import logging
import os
import re
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tensorboardX.crc32c import crc32c
from tensorboardX.proto import event_pb2

from dirjax import writers
from dirjax.writers import MetricWriter, ProgressLogger


def masked_crc(data: bytes) -> int:
  """TFRecord's masked CRC32C (tensorflow/core/lib/hash/crc32c.h)."""
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_events(path):
  """Parses a TFRecord file: [len u64][crc(len) u32][data][crc(data) u32] per record."""
  events = []
  with open(path, "rb") as f:
    blob = f.read()
  pos = 0
  while pos < len(blob):
    header = blob[pos:pos + 8]
    (length,) = struct.unpack("<Q", header)
    (len_crc,) = struct.unpack("<I", blob[pos + 8:pos + 12])
    assert len_crc == masked_crc(header)
    data = blob[pos + 12:pos + 12 + length]
    (data_crc,) = struct.unpack("<I", blob[pos + 12 + length:pos + 16 + length])
    assert data_crc == masked_crc(data)
    events.append(event_pb2.Event.FromString(data))
    pos += 16 + length
  return events


def test_jsonl_and_tensorboard_scalars(tmp_path):
  writer = MetricWriter(tmp_path)
  writer.write_scalars(3, {"train/loss": jnp.float32(1.5), "val": {"mae": 2, "few": {"mae": None}}})
  writer.write_scalars(7, {"train/loss": 0.25})
  writer.close()
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(line) for line in lines] == [
    {"step": 3, "train/loss": 1.5, "val/mae": 2.0, "val/few/mae": None}, {"step": 7, "train/loss": 0.25}]
  (event_file,) = [f for f in os.listdir(tmp_path) if f.startswith("events.out.tfevents")]
  scalars = [(e.step, v.tag, v.simple_value) for e in read_events(tmp_path / event_file)
             for v in e.summary.value]
  assert scalars == [(3, "train/loss", 1.5), (3, "val/mae", 2.0), (7, "train/loss", 0.25)]


def test_hparams_go_to_json_and_tensorboard(tmp_path):
  writer = MetricWriter(tmp_path)
  writer.write_hparams({"optimizer": {"lr": 1e-3, "milestones": (60, 80)}, "fds": True})
  writer.close()
  assert json.loads((tmp_path / "hparams.json").read_text()) == {
    "fds": True, "optimizer/lr": 1e-3, "optimizer/milestones": "(60, 80)"}
  (event_file,) = [f for f in os.listdir(tmp_path) if f.startswith("events.out.tfevents")]
  tags = [v.tag for e in read_events(tmp_path / event_file) for v in e.summary.value]
  assert "_hparams_/experiment" in tags and "_hparams_/session_start_info" in tags


def test_jsonl_only_without_tensorboard_and_appends(tmp_path):
  for step in (1, 2):
    writer = MetricWriter(tmp_path, enable_tensorboard=False)
    writer.write_scalars(step, {"loss": step})
    writer.flush()
    writer.close()
  assert not any(f.startswith("events") for f in os.listdir(tmp_path))
  assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def strict_loads(text):
  """json.loads that refuses the non-standard NaN / Infinity tokens (as jq or JavaScript do)."""
  def reject(token):
    raise ValueError(f"non-standard JSON token {token}")
  return json.loads(text, parse_constant=reject)


def test_non_finite_values_are_written_as_strict_json_null(tmp_path):
  writer = MetricWriter(tmp_path, enable_tensorboard=False)
  writer.write_scalars(1, {"log10": float("nan"), "loss": jnp.float32(0.5), "big": float("inf")})
  writer.close()
  assert strict_loads((tmp_path / "metrics.jsonl").read_text()) == {
    "step": 1, "log10": None, "loss": 0.5, "big": None}
  writers.write_json(tmp_path / "m.json", {"test": {"all": {"log10": np.float32("nan"), "n": np.int64(3)},
                                                    "few": [-np.inf, 2.5]}})
  assert strict_loads((tmp_path / "m.json").read_text()) == {
    "test": {"all": {"log10": None, "n": 3}, "few": [None, 2.5]}}


def test_only_process_zero_writes(tmp_path, monkeypatch):
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  writer = MetricWriter(tmp_path / "run")
  writer.write_scalars(1, {"loss": 1.0})
  writer.write_hparams({"lr": 1.0})
  writer.flush()
  writer.close()
  assert not (tmp_path / "run").exists()


class Unreadable:
  def __float__(self):
    raise AssertionError("converted a value on a step that is not logged")


class Clock:
  def __init__(self, now: float):
    self.now = now

  def __call__(self) -> float:
    return self.now


def test_progress_line_format_rate_and_eta(monkeypatch, caplog):
  clock = Clock(98.0)
  monkeypatch.setattr(writers.time, "perf_counter", clock)
  progress = ProgressLogger(total_steps=1000, log_every_steps=10)
  clock.now = 100.0
  with caplog.at_level(logging.INFO):
    first = progress.maybe_log(10, epoch=0, loss=jnp.float32(0.5), sigma=1.25)
    assert progress.maybe_log(11, epoch=0, loss=Unreadable(), sigma=Unreadable()) is None
    clock.now = 102.0  # 10 steps in 2 s = 5.0 steps/s; (1000 - 20) / 5 = 196 s = 03:16.
    second = progress.maybe_log(20, epoch=1, loss=0.125, sigma=1.0)
    clock.now = 110.0  # The last step is always logged: 980 steps in 8 s.
    last = progress.maybe_log(1000, epoch=9, loss=0.1)
  assert first == "step 10/1000 (epoch 0) | loss 0.5 | σ 1.25 | first step after 2.0 s (incl. compiling)"
  assert second == "step 20/1000 (epoch 1) | loss 0.125 | σ 1 | 5.0 steps/s | ETA 03:16"
  assert last == "step 1000/1000 (epoch 9) | loss 0.1 | 122.5 steps/s | ETA 00:00"
  assert re.search(r"step 20/1000 \(epoch 1\).*ETA 03:16", caplog.text)


def test_progress_first_line_after_one_step_and_then_every_30_seconds(monkeypatch):
  clock = Clock(0.0)
  monkeypatch.setattr(writers.time, "perf_counter", clock)
  progress = ProgressLogger(total_steps=100_000, log_every_steps=1000)
  assert progress.due(1)  # the first completed step: a line within seconds, not after 1000 steps
  clock.now = 3.0
  assert progress.maybe_log(1, epoch=0, loss=1.0) is not None
  clock.now = 32.9
  assert not progress.due(2)  # 29.9 s since the last line
  clock.now = 33.0
  line = progress.maybe_log(7, epoch=0, loss=1.0)  # 6 steps in 30 s = 0.2 steps/s
  assert line == f"step 7/100000 (epoch 0) | loss 1 | 0.2 steps/s | ETA {writers._clock((100_000 - 7) / 0.2)}"
  assert writers._clock((100_000 - 7) / 0.2) == "138:52:45"  # 499965 s = 138 h (496800 s) + 52 min 45 s (3165 s)


def test_progress_variant_prefix_and_whole_run_eta(monkeypatch):
  clock = Clock(0.0)
  monkeypatch.setattr(writers.time, "perf_counter", clock)
  with writers.variant_progress(2, 7):  # the third of seven variants
    progress = ProgressLogger(total_steps=100, log_every_steps=10)
    progress.maybe_log(10, epoch=0, loss=1.0)
    clock.now = 10.0
    line = progress.maybe_log(20, epoch=0, loss=1.0)  # 1 step/s: 80 s left here, 4 × 100 s after it
  assert line == "variant 3/7 | step 20/100 (epoch 0) | loss 1 | 1.0 steps/s | ETA 01:20 | run ETA 08:00"
  assert writers._VARIANT == {"index": 0, "count": 1}  # restored after the block


def test_progress_logger_rejects_bad_counts():
  with pytest.raises(ValueError, match="total_steps and log_every_steps"):
    ProgressLogger(0)
  with pytest.raises(ValueError, match="total_steps and log_every_steps"):
    ProgressLogger(10, log_every_steps=0)
