"""`dirjax.sweep`: seeds × variants, resumable, with the seed table of `reporting.summarize`."""

import json

import numpy as np
import pytest

from configs import synthetic_1d
from dirjax import reporting, sweep, train


def tiny_config():
  c = synthetic_1d.get_config("smoke")
  c.num_epochs = 3  # 3 steps per run: a kill can land between checkpoints
  return c


def test_killed_sweep_resumes_to_the_uninterrupted_table(tmp_path):
  config, seeds, kw = tiny_config(), [0, 1], {"variants": ["mse", "bmc"], "baseline": "mse"}
  full = sweep.run_sweep(config, str(tmp_path / "full"), seeds, **kw)

  calls = []
  def killed_in_third_run(cfg, workdir, **_):
    calls.append(workdir)
    return train.train_and_evaluate(cfg, workdir, stop_after_steps=2 if len(calls) == 3 else None)

  stopped = sweep.run_sweep(config, str(tmp_path / "cut"), seeds, train=killed_in_third_run, **kw)
  assert stopped == {"stopped_at_step": 2} and not (tmp_path / "cut" / "seeds.md").exists()
  assert calls[-1].endswith("mse/seed1")  # seed-major order: mse s0, bmc s0, mse s1 (cut)
  calls.clear()
  resumed = sweep.run_sweep(config, str(tmp_path / "cut"), seeds, train=killed_in_third_run, **kw)
  assert [c.rsplit("/", 2)[-2:] for c in calls] == [["mse", "seed1"], ["bmc", "seed1"]]  # finished runs skipped
  assert (tmp_path / "cut" / "seeds.md").read_text() == (tmp_path / "full" / "seeds.md").read_text()
  assert json.loads((tmp_path / "cut" / "seeds.json").read_text()) == json.loads((tmp_path / "full" / "seeds.json").read_text())
  assert resumed == json.loads(json.dumps(full))
  assert (tmp_path / "cut" / "seeds.png").stat().st_size > 0


def test_summary_statistics_and_table_from_constructed_runs():
  def run(value):
    return {"epoch": 1, "test": {"all": {"mae": value}}, "last": {"test": {"all": {"mae": value + 1}}}}
  base = [1.0, 2.0, 3.0]
  results = {"vanilla": {s: run(v) for s, v in enumerate(base)},
             "same": {s: run(v) for s, v in enumerate(base)},
             "better": {s: run(v - 0.5 + 0.01 * s) for s, v in enumerate(base)}}
  summary = reporting.summarize(results, ["all/mae"], "test", baseline="vanilla")
  sd = np.std(base, ddof=1)
  assert summary["variants"]["vanilla"]["best"]["all/mae"]["half_width"] == pytest.approx(4.302652729911275 * sd / np.sqrt(3))
  assert summary["paired"]["same"]["best"]["all/mae"]["excludes_zero"] is False
  assert summary["paired"]["better"]["best"]["all/mae"]["excludes_zero"] is True
  table = reporting.seed_table(summary)
  assert "| better | 3 | -0.4900 ± " in table and table.count(" * |") == 2  # best and last both exclude 0
  one = reporting.comparison_table({"vanilla": run(1.25)}, ["all/mae"], "test")
  assert "| vanilla | 1 | 1 | 1.250000 | 2.250000 | - |" in one


def test_seeds_and_variant_errors():
  assert sweep.parse_seeds("3") == [0, 1, 2] and sweep.parse_seeds("4,7") == [4, 7]
  for bad in ("0", "1,1", "a"):
    with pytest.raises(ValueError, match="--seeds"):
      sweep.parse_seeds(bad)
  with pytest.raises(ValueError, match="not in the config"):
    sweep.sweep_configs(tiny_config(), ["vanila"])
  with pytest.raises(ValueError, match="--baseline"):
    sweep.run_sweep(tiny_config(), "/nonexistent", [0], variants=["mse"], baseline="bmc")
