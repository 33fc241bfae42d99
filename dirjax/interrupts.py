"""Clean stops on SIGINT (Ctrl-C) and SIGTERM (preemption, `kill`, SLURM / Kubernetes time limits).

Inside `catch_signals()` the first SIGINT or SIGTERM only sets a flag (`requested()`): no
`KeyboardInterrupt` is raised in the middle of the input pipeline, a jitted call or a checkpoint
write. The trainer polls the flag after every step, saves a checkpoint of the finished step and
raises `Interrupted`, which `dirjax.main` prints as one line before exiting with `128 + signal`
(130 for SIGINT, 143 for SIGTERM, the shell convention). A second signal ends the process at once
(`os._exit`, same status) without saving; the last committed checkpoint stays valid because each
step is written under a temporary name and renamed (`dirjax.checkpoint`).

Light on purpose (no JAX import): `dirjax.main` installs the handlers before importing the trainer.
"""

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []  # signal numbers received inside the active `catch_signals`
_active = [False]


class Interrupted(BaseException):
  """A run stopped by SIGINT/SIGTERM after saving its state (a `BaseException`, as `KeyboardInterrupt`,
  so that `except Exception` blocks do not swallow it)."""

  def __init__(self, signum: int, step: int, directory: str):
    self.signum, self.step, self.directory = signum, step, directory
    super().__init__(f"interrupted at step {step}; checkpoint saved in {directory}; "
                     "re-run the same command to resume")

  @property
  def exit_code(self) -> int:
    return 128 + self.signum


def _handle(signum: int, frame) -> None:
  del frame
  if _received:
    print(f"dirjax: second {signal.Signals(signum).name}: exiting at once without saving "
          "(the last committed checkpoint is kept)", file=sys.stderr, flush=True)
    os._exit(128 + signum)
  _received.append(signum)
  print(f"dirjax: {signal.Signals(signum).name} received: finishing the current step and saving a checkpoint "
        "(send it again to exit at once)", file=sys.stderr, flush=True)


@contextlib.contextmanager
def catch_signals() -> Iterator[None]:
  """Turns SIGINT/SIGTERM into `requested()` inside the block; the previous handlers come back after.

  Nested blocks share the outer one. Outside the main thread (where Python cannot install signal
  handlers) the block does nothing and signals keep their usual effect.
  """
  if _active[0] or threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = {s: signal.signal(s, _handle) for s in SIGNALS}
  _active[0] = True
  _received.clear()
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
    _active[0] = False
    _received.clear()


def requested() -> int | None:
  """The signal number of a pending stop request, or None."""
  return _received[0] if _received else None
