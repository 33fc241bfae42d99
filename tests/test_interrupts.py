"""Clean interrupts and mid-epoch resumes: SIGINT / SIGTERM finish the step, save and exit with one line
and 130 / 143; step checkpoints resume at their data position; the rerun is the uninterrupted run.

The run is the crash test's (`tests/crash_worker.py`: 4 epochs x 4 steps on synthetic 1-D data, MLP
with dropout, FDS, BMC with a learnable σ, an evaluation every 2 epochs) with a checkpoint every 3
steps, so that checkpoints fall mid-epoch (steps 3, 6, 9, 15: batches 3, 2, 1 and 3 of their epochs) as
well as at every epoch end.
The reference is the same config trained without step checkpoints and never interrupted; every
comparison is bit for bit (parameters of the latest and best checkpoints, their meta, metrics.json).
"""

import os
import re
import signal
import subprocess
import sys
import time

import ml_collections
import numpy as np
import pytest

from dirjax import interrupts, train, writers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crash_worker  # noqa: E402
from test_crash import _assert_same_run, _final  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVERY_STEPS = 3
COMMAND = [sys.executable, "-m", "dirjax.main", f"--config={os.path.join(ROOT, 'tests', 'crash_worker.py')}",
           f"--config.checkpoint.every_steps={EVERY_STEPS}"]
MESSAGE = re.compile(r"^dirjax: interrupted at step (\d+); checkpoint saved in (\S+); "
                     r"re-run the same command to resume$")
TIMEOUT_S = 180  # a run that has not exited by then hangs


def config(every_steps: int = EVERY_STEPS) -> ml_collections.ConfigDict:
  c = crash_worker.get_config()
  c.checkpoint.every_steps = every_steps
  c.lock()
  return c


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The uninterrupted run without step checkpoints, and an Experiment to restore checkpoints."""
  workdir = str(tmp_path_factory.mktemp("uninterrupted"))
  train.train_and_evaluate(config(every_steps=0), workdir)
  experiment = train.Experiment(config())
  return experiment, _final(experiment, workdir)


def _latest_meta(experiment: train.Experiment, workdir: str) -> tuple[int, dict]:
  _, meta = experiment.restore(os.path.join(workdir, "checkpoints"), "latest")
  return meta["step"], meta


# ------------------------------------------------------------------------------------------------
# In process: step checkpoints, mid-epoch resume, the signal flag.


def test_mid_epoch_checkpoint_resumes_at_its_data_position(tmp_path, reference):
  experiment, want = reference
  workdir = str(tmp_path / "run")
  stopped = train.train_and_evaluate(config(), workdir, stop_after_steps=7)  # killed after step 7
  assert stopped == {"stopped_at_step": 7}
  step, meta = _latest_meta(experiment, workdir)
  assert (step, meta["data_position"], meta["epoch"]) == (6, [1, 2], 1)  # 4 steps/epoch: step 6 = epoch 1, batch 2
  train.train_and_evaluate(config(), workdir)  # the same call again resumes at epoch 1, batch 2
  _assert_same_run(_final(experiment, workdir), want)


def test_resume_twice_mid_epoch_across_epoch_ends(tmp_path, reference):
  experiment, want = reference
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config(), workdir, stop_after_steps=3)  # latest: step 3 (epoch 0, batch 3)
  assert _latest_meta(experiment, workdir)[1]["data_position"] == [0, 3]
  train.train_and_evaluate(config(), workdir, stop_after_steps=7)  # steps 4..10; latest: step 9 (epoch 2, batch 1)
  assert _latest_meta(experiment, workdir)[1]["data_position"] == [2, 1]
  train.train_and_evaluate(config(), workdir)
  _assert_same_run(_final(experiment, workdir), want)


def test_sigint_in_process_saves_the_step_and_raises(tmp_path, reference, monkeypatch):
  """A SIGINT delivered while step 6 is logged: the step is saved and `Interrupted` raised; the previous
  handler is back afterwards; the same call again gives the uninterrupted run."""
  experiment, want = reference
  workdir = str(tmp_path / "run")
  maybe_log = writers.ProgressLogger.maybe_log

  def log_and_interrupt(self, step, **kwargs):
    if step == 6:
      os.kill(os.getpid(), signal.SIGINT)
    return maybe_log(self, step, **kwargs)

  def own_handler(signum, frame):  # the caller's handler (a pytest-xdist worker starts with SIG_IGN)
    raise AssertionError("the caller's handler ran during training")

  monkeypatch.setattr(writers.ProgressLogger, "maybe_log", log_and_interrupt)
  original = signal.signal(signal.SIGINT, own_handler)
  try:
    with pytest.raises(interrupts.Interrupted) as raised:
      train.train_and_evaluate(config(every_steps=0), workdir)
    assert signal.getsignal(signal.SIGINT) is own_handler
  finally:
    signal.signal(signal.SIGINT, original)
  assert (raised.value.step, raised.value.exit_code) == (6, 130)
  assert str(raised.value) == (f"interrupted at step 6; checkpoint saved in {workdir}/checkpoints; "
                               "re-run the same command to resume")
  step, meta = _latest_meta(experiment, workdir)
  assert (step, meta["data_position"]) == (6, [1, 2])
  monkeypatch.setattr(writers.ProgressLogger, "maybe_log", maybe_log)
  train.train_and_evaluate(config(every_steps=0), workdir)
  _assert_same_run(_final(experiment, workdir), want)


def test_negative_every_steps_is_rejected():
  c = crash_worker.get_config()
  c.checkpoint.every_steps = -1
  with pytest.raises(ValueError, match="checkpoint.every_steps must be >= 0"):
    train.check_config(c)


# ------------------------------------------------------------------------------------------------
# Kill tests: `python -m dirjax.main` in a subprocess, signalled at seeded random moments.


def _start(workdir: str, log: str) -> subprocess.Popen:
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  with open(log, "w") as err:
    return subprocess.Popen(COMMAND + [f"--workdir={workdir}"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=err)


def _wait(proc: subprocess.Popen) -> int:
  try:
    return proc.wait(timeout=TIMEOUT_S)
  except subprocess.TimeoutExpired:
    proc.kill()
    proc.wait()
    pytest.fail(f"the run did not exit within {TIMEOUT_S} s (hang)")


def _wait_for(proc: subprocess.Popen, log: str, pattern: str) -> None:
  deadline = time.monotonic() + TIMEOUT_S
  while time.monotonic() < deadline and proc.poll() is None:
    with open(log) as f:
      if re.search(pattern, f.read()):
        return
    time.sleep(0.05)


def _signal_once_training(workdir: str, log: str, signals: list[int], delay: float) -> tuple[int | None, str]:
  """Runs the command, sends `signals[0]` `delay` seconds after it logs its devices (start-up, with the
  handlers installed) and each further one once the previous is acknowledged. Returns (status, stderr);
  status None when the run had finished before the first signal was sent."""
  proc = _start(workdir, log)
  _wait_for(proc, log, "JAX process")
  time.sleep(delay)
  sent = False
  for i, signum in enumerate(signals):
    if proc.poll() is None:
      proc.send_signal(signum)
      sent = True
      if i + 1 < len(signals):
        _wait_for(proc, log, "received: finishing")
  status = _wait(proc)
  with open(log) as f:
    return (status if sent else None), f.read()


def _check_interrupted(status: int, stderr: str, signum: int, workdir: str, experiment) -> None:
  assert status == 128 + signum, stderr[-3000:]
  assert "Traceback" not in stderr, stderr[-3000:]
  last_line = stderr.strip().splitlines()[-1]
  match = MESSAGE.match(last_line)
  assert match, last_line
  assert match.group(2) == os.path.join(workdir, "checkpoints")
  assert _latest_meta(experiment, workdir)[0] == int(match.group(1))  # the step it names is the one saved


def _trial(tmp_path, reference, rng: np.random.Generator, signums: list[int]) -> None:
  """One run per signal in `signums` (each the same command again) signalled at a random moment of its
  start-up or training, then the command once more without signals: the uninterrupted run's results."""
  experiment, want = reference
  workdir = str(tmp_path / "run")
  for i, signum in enumerate(signums):
    status, stderr = _signal_once_training(workdir, str(tmp_path / f"log{i}"), [signum], float(rng.uniform(0, 3)))
    if status is None:  # finished before the moment came: the run is complete
      assert i > 0, "the first run finished within 3 s: lengthen the run"
      break
    _check_interrupted(status, stderr, signum, workdir, experiment)
  status = _wait(_start(workdir, str(tmp_path / "final")))
  assert status == 0, open(tmp_path / "final").read()[-3000:]
  _assert_same_run(_final(experiment, workdir), want)


def test_sigint_then_sigterm_then_rerun_is_the_uninterrupted_run(tmp_path, reference):
  _trial(tmp_path, reference, np.random.default_rng(0), [signal.SIGINT, signal.SIGTERM])


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 6))
def test_random_signals_then_rerun_is_the_uninterrupted_run(tmp_path, reference, seed):
  rng = np.random.default_rng(seed)
  _trial(tmp_path, reference, rng, [int(s) for s in rng.choice([signal.SIGINT, signal.SIGTERM], size=2)])


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_second_signal_exits_at_once_and_the_workdir_resumes(tmp_path, reference, signum):
  experiment, want = reference
  workdir = str(tmp_path / "run")
  status, stderr = _signal_once_training(workdir, str(tmp_path / "log"), [signum, signum], 2.0)
  assert status == 128 + signum, stderr[-3000:]
  assert "Traceback" not in stderr
  assert stderr.strip().splitlines()[-1] == (f"dirjax: second {signal.Signals(signum).name}: exiting at once "
                                             "without saving (the last committed checkpoint is kept)")
  assert _wait(_start(workdir, str(tmp_path / "final"))) == 0
  _assert_same_run(_final(experiment, workdir), want)
