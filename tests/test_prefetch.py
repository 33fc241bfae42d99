"""Host → device prefetch (`dirjax.data.prefetch`, `config.prefetch_to_device`): same batches in the same
order, bounded read-ahead, errors reach the consumer, no thread outlives the loop, bit-equal training."""

import os
import sys
import threading
import time

import numpy as np
import pytest

from dirjax import sharding, train
from dirjax.data import pipeline, prefetch

sys.path.insert(0, os.path.dirname(__file__))
from test_train import _leaves, _latest_state, tiny_config  # noqa: E402


def _prefetch_threads() -> list[threading.Thread]:
  return [t for t in threading.enumerate() if t.name == "dirjax-prefetch" and t.is_alive()]


class _Counted:
  """A source of 0, 1, 2, ... that records how many items were taken from it (and from which thread)."""

  def __init__(self, n: int, fail_at: int | None = None):
    self.n, self.fail_at, self.taken, self.closed, self.threads = n, fail_at, 0, False, set()

  def __iter__(self):
    self.iterator = self._items()  # held here, so only an explicit close (not garbage collection) closes it
    return self.iterator

  def _items(self):
    try:
      for i in range(self.n):
        if i == self.fail_at:
          raise OSError(f"cannot read item {i}")
        self.taken += 1
        self.threads.add(threading.current_thread().name)
        yield i
    finally:
      self.closed = True


def _wait_for(condition, seconds: float = 5.0) -> None:
  deadline = time.monotonic() + seconds
  while not condition() and time.monotonic() < deadline:
    time.sleep(0.01)


@pytest.mark.parametrize("size", [1, 2, 5])
def test_loader_batches_equal_those_without_prefetch(size):
  mesh = sharding.make_mesh()  # 4 fake CPU devices: batches sharded over them as the trainer's
  data = pipeline.ArrayDataset({"inputs": np.arange(22, dtype=np.float32)[:, None] * 10,
                                "targets": np.arange(22, dtype=np.float32)[:, None]})
  augment = lambda element, rng: {**element, "inputs": element["inputs"] + rng.integers(0, 1000)}
  plain = pipeline.Loader(data, batch_size=4, mesh=mesh, shuffle=True, seed=7, augment=augment)
  ahead = pipeline.Loader(data, batch_size=4, mesh=mesh, shuffle=True, seed=7, augment=augment, prefetch=size)
  for epoch, start in ((0, 0), (1, 0), (1, 3)):
    expected, got = list(plain(epoch, start)), list(ahead(epoch, start))
    assert len(got) == len(expected) == 6 - start
    for e, g in zip(expected, got, strict=True):
      assert g.keys() == e.keys()
      for key in e:
        np.testing.assert_array_equal(np.asarray(g[key]), np.asarray(e[key]))
        assert g[key].sharding == e[key].sharding == sharding.data_sharding(mesh)
  assert not _prefetch_threads()


@pytest.mark.parametrize("size", [1, 3])
def test_read_ahead_never_exceeds_size(size):
  source = _Counted(20)
  items = prefetch.prefetch(source, size)
  seen = []
  for item in items:
    seen.append(item)
    _wait_for(lambda: source.taken >= min(len(seen) + size, 20), 1.0)  # let the thread read as far as it may
    time.sleep(0.02)
    ahead = source.taken - len(seen)
    assert ahead == min(size, 20 - len(seen)), (len(seen), source.taken)
  assert seen == list(range(20))
  assert source.threads == {"dirjax-prefetch"} and source.closed


def test_producer_error_reaches_the_consumer_after_the_earlier_items():
  source = _Counted(10, fail_at=4)
  got = []
  with pytest.raises(OSError, match="cannot read item 4"):
    for item in prefetch.prefetch(source, 2):
      got.append(item)
  assert got == [0, 1, 2, 3]
  assert source.closed and not _prefetch_threads()


def test_an_error_starting_the_source_reaches_the_consumer():
  class Unreadable:
    def __iter__(self):
      raise FileNotFoundError("shard 0 is missing")
  with pytest.raises(FileNotFoundError, match="shard 0"):
    next(prefetch.prefetch(Unreadable(), 2))
  assert not _prefetch_threads()


@pytest.mark.parametrize("how", ["break", "exception", "keyboard_interrupt", "close"])
def test_leaving_early_stops_the_thread_and_closes_the_source(how):
  source = _Counted(1000)
  items = prefetch.prefetch(source, 2)
  try:
    for item in items:
      if item == 3:
        if how == "break":
          break
        if how == "exception":
          raise RuntimeError("step failed")
        if how == "keyboard_interrupt":
          raise KeyboardInterrupt
        items.close()
  except (RuntimeError, KeyboardInterrupt):
    pass
  if how in ("break", "exception", "keyboard_interrupt"):
    items.close()  # what `contextlib.closing` in the trainer's loops does at once (not at garbage collection)
  assert not _prefetch_threads()
  assert source.closed and source.taken <= 4 + 2


def test_negative_size_is_rejected():
  with pytest.raises(ValueError, match="prefetch_to_device must be >= 0"):
    prefetch.prefetch([], -1)
  with pytest.raises(ValueError, match="prefetch_to_device must be >= 0"):
    pipeline.Loader(pipeline.ArrayDataset({"x": np.zeros(4)}), batch_size=4, mesh=sharding.make_mesh(), prefetch=-2)


def test_training_with_prefetch_is_bit_equal_and_resumes_exactly(tmp_path):
  """4 fake CPU devices: the trainer blocks after each step (`sharding.needs_step_sync`) while the thread
  places the next batches; metrics and final state equal the run without prefetch, also after a preemption."""
  assert sharding.needs_step_sync(sharding.make_mesh())
  plain = train.train_and_evaluate(tiny_config(), str(tmp_path / "plain"))
  ahead_config = tiny_config(prefetch_to_device=2)
  ahead = train.train_and_evaluate(ahead_config, str(tmp_path / "ahead"))
  assert ahead == plain
  stopped = train.train_and_evaluate(ahead_config, str(tmp_path / "resumed"), stop_after_steps=6)
  assert stopped == {"stopped_at_step": 6} and not _prefetch_threads()
  resumed = train.train_and_evaluate(ahead_config, str(tmp_path / "resumed"))
  assert resumed == plain
  for a, b in zip(_leaves(_latest_state(str(tmp_path / "plain"), tiny_config())[0]),
                  _leaves(_latest_state(str(tmp_path / "resumed"), ahead_config)[0]), strict=True):
    np.testing.assert_array_equal(a, b)
  assert not _prefetch_threads()
