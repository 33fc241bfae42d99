"""`python -m dirjax.main --mode=eval` on a finished run reproduces the run's own metrics."""

import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# 6 epochs of the 1-D benchmark with a large learning rate: the validation MSE is lowest at epoch 4,
# so the best and the latest checkpoint differ.
CONFIG = '''
import ml_collections
from configs import synthetic_1d

def get_config():
  c = synthetic_1d.get_config("smoke")
  c.variants = ml_collections.ConfigDict()
  c.num_epochs = 6
  c.data.num_train = 32
  c.optimizer.lr = 0.03
  c.checkpoint.max_to_keep = 2
  return c
'''


def _main(*flags: str) -> str:
  proc = subprocess.run([sys.executable, "-m", "dirjax.main", *flags], cwd=ROOT, capture_output=True, text=True,
                        env={**os.environ, "PYTHONPATH": ROOT}, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_eval_mode_restores_the_best_and_the_latest_checkpoint(tmp_path):
  config, workdir = tmp_path / "tiny.py", tmp_path / "run"
  config.write_text(CONFIG)
  _main(f"--config={config}", f"--workdir={workdir}")  # training through the command line too
  run = json.loads((workdir / "metrics.json").read_text())
  assert run["epoch"] != run["last"]["epoch"] and run["val"] != run["last"]["val"]

  printed = _main(f"--config={config}", f"--workdir={workdir}", "--mode=eval")
  best = json.loads((workdir / "eval_best.json").read_text())
  assert best["epoch"] == run["epoch"]
  for split in ("val", "test"):
    assert best[split] == run[split]
  assert f"[best checkpoint, epoch {run['epoch']}] test:" in printed

  _main(f"--config={config}", f"--workdir={workdir}", "--mode=eval", "--checkpoint=latest")
  latest = json.loads((workdir / "eval_latest.json").read_text())
  for split in ("val", "test"):
    assert latest[split] == run["last"][split]
