"""The command the kill test of `tests/test_crash.py` runs and kills (not a test itself); also its config.

  python tests/crash_worker.py --config=tests/crash_worker.py --workdir=W [--kill_at=KIND:N]

Runs `dirjax.main` unchanged on `get_config()` (4 epochs x 4 steps on the synthetic 1-D data, MLP
with dropout, FDS, BMC with a learnable σ; a checkpoint every epoch with `max_to_keep=1` as the
shipped configs, an evaluation every 2 epochs). `--kill_at` ends the process with `os._exit` (no
`finally`, no `atexit`, orbax's writer threads die with it: what `kill -9` does) at one moment:

* `before_save:N`: just before the N-th `CheckpointManager.save` call of the run;
* `in_flight:N`: right after the N-th save call returns, its asynchronous write still running;
* `committed:N`: after the N-th save is committed on disk (with the former two managers, the
  commit of `latest/` at an evaluation step is followed by the `best/` save: this is the window
  between the two commits);
* `json:NAME`: in the middle of writing the JSON file NAME (half of its text is written).

Without `--kill_at` it is the plain command, run again after each kill.
"""

import json
import os
import sys

import ml_collections

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get_config() -> ml_collections.ConfigDict:
  sys.path.insert(0, ROOT)
  from configs import synthetic_1d

  c = synthetic_1d.get_config("smoke")
  c.variants = ml_collections.ConfigDict()
  c.num_epochs = 4
  c.data.num_train = 32
  c.eval.every_epochs = 2
  c.checkpoint.every_epochs = 1
  c.checkpoint.max_to_keep = 1
  c.model = ml_collections.ConfigDict({"name": "mlp", "in_features": 1, "hidden": (8,), "out_dim": 1, "dropout": 0.1})
  c.loss.name, c.loss.fix_noise_sigma = "bmc", False
  c.fds.enabled = True
  c.optimizer.lr = 1e-2
  c.log_every_steps = 2
  return c


def _install_kill(spec: str) -> None:
  import orbax.checkpoint as ocp

  kind, _, arg = spec.partition(":")
  if kind == "json":
    original_dump = json.dump

    def dump(obj, f, **kwargs):
      if os.path.basename(getattr(f, "name", "")).startswith(arg):
        text = json.dumps(obj, **kwargs)
        f.write(text[:len(text) // 2])
        f.flush()
        os._exit(9)
      return original_dump(obj, f, **kwargs)

    json.dump = dump
    return
  if kind not in ("before_save", "in_flight", "committed"):
    raise ValueError(f"unknown kill moment {spec!r}")
  target, calls = int(arg), [0]
  original_save = ocp.CheckpointManager.save

  def save(self, step, *args, **kwargs):
    calls[0] += 1
    if calls[0] == target and kind == "before_save":
      os._exit(9)
    out = original_save(self, step, *args, **kwargs)
    if calls[0] == target:
      if kind == "committed":
        self.wait_until_finished()
      os._exit(9)
    return out

  ocp.CheckpointManager.save = save


if __name__ == "__main__":
  kill_at = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--kill_at=")]
  sys.argv = [a for a in sys.argv if not a.startswith("--kill_at=")]
  if kill_at:
    _install_kill(kill_at[0])
  from absl import app

  from dirjax import main
  app.run(main.main)
