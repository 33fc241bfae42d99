"""Host → device prefetch: a background thread that reads the next `size` batches (and places them on the
devices, `sharding.to_global` inside the loader) while the current step runs.

At most `size` batches are taken from the source ahead of the one the consumer holds (a semaphore of
`size` slots, released when the consumer takes a batch), so the memory it holds is bounded. The order is
the source's, so a run with prefetch reads exactly the batches of one without (resume stays exact: the
read-ahead batches of a stopped run are dropped, the checkpoint records the consumed position). An
exception in the source reaches the consumer after the batches before it. Leaving the loop early (break,
an exception, KeyboardInterrupt, `close()`) stops the thread, which closes the source in its own thread,
and joins it before returning.

It adds no device synchronisation: the thread only reads and transfers (no collective runs in it), so a
multi-device CPU mesh whose steps block one by one (`sharding.needs_step_sync`) still runs one collective
program at a time.
"""

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


class _Failure:
  def __init__(self, error: BaseException):
    self.error = error


def check_size(size: int) -> int:
  if size < 0:
    raise ValueError(f"prefetch_to_device must be >= 0 (0: off), got {size}")
  return size


def prefetch(source: Iterable[T], size: int) -> Iterator[T]:
  """The items of `source` in order, read up to `size` items ahead in a background thread (`size = 0`:
  `iter(source)`, read in the consuming thread). The thread starts at the first `next`."""
  return _read_ahead(source, size) if check_size(size) else iter(source)


def _read_ahead(source: Iterable[T], size: int) -> Iterator[T]:
  slots, ready, stop = threading.Semaphore(size), queue.Queue(), threading.Event()

  def produce():
    iterator = None
    try:
      iterator = iter(source)
      while True:
        slots.acquire()
        if stop.is_set():
          return
        item = next(iterator, _END)
        ready.put(item)
        if item is _END:
          return
    except BaseException as e:  # noqa: BLE001 -- handed to the consumer, which raises it
      ready.put(_Failure(e))
    finally:
      close = getattr(iterator, "close", None)
      if close is not None:
        close()

  thread = threading.Thread(target=produce, name="dirjax-prefetch", daemon=True)
  thread.start()
  try:
    while True:
      item = ready.get()
      if item is _END:
        return
      if isinstance(item, _Failure):
        raise item.error
      slots.release()
      yield item
  finally:
    stop.set()
    slots.release()  # wakes a producer waiting for a slot; it sees `stop` and closes the source
    thread.join()
