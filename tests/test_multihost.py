"""Multi-controller training on JAX's own runtime: 2 local CPU processes (2 devices each) joined by
`jax.distributed` over loopback (gloo collectives) run `dirjax.main` through
`tests/multihost_worker.py`, and are compared with this single pytest process (1 process, the same
4 CPU devices from conftest, so XLA partitions every step the same way):

* parameters, σ, FDS statistics and metrics equal the single-process run with the same global batch
  and seed. Tolerance rtol 1e-5 / atol 1e-6 on floats: the cross-process all-reduce (gloo) sums
  the 4 device partials in another order than the in-process one, a few float32 ulps per reduction
  (measured: 2.4e-7 on FDS running means, 0 on the parameters);
* the 2-process checkpoint (one per step) restores in 1 process on 1 device with the same metrics;
* every row of a 37-row eval split (batches of 8 on 4 devices) is predicted exactly once, checked
  against a numpy forward pass of the restored parameters.
Every subprocess has a timeout and is killed when the test fails.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from dirjax import distributed, optim, train
from dirjax.data import get_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import multihost_worker  # noqa: E402
from configs import synthetic_1d  # noqa: E402

WORKER_TIMEOUT_S = 240
CONFIG_ARG = "configs/synthetic_1d.py:smoke"


def _config():
  c = multihost_worker.configure(synthetic_1d.get_config("smoke"))
  c.lock()
  return c


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _child_env(devices: int) -> dict[str, str]:
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", distributed.ENV_SWITCH)}
  env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
  return env


def _run_together(cmds: list[list[str]], logs: list, env: dict[str, str]) -> list[int | None]:
  """Starts the processes, waits for all of them (at most WORKER_TIMEOUT_S) and kills every one
  still running once one fails or time is up. Returns the exit codes (None: killed)."""
  procs, deadline = [], time.monotonic() + WORKER_TIMEOUT_S
  try:
    for cmd, log in zip(cmds, logs):
      procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
      if any(p.poll() not in (None, 0) for p in procs):
        break
      time.sleep(0.2)
    return [p.poll() for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
  """Workdir of the 2-process run and each process's loader check."""
  tmp = tmp_path_factory.mktemp("multihost")
  workdir, port = str(tmp / "run"), _free_port()
  cmds = [[sys.executable, os.path.join(ROOT, "tests", "multihost_worker.py"), f"--config={CONFIG_ARG}",
           f"--workdir={workdir}", f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
           f"--process_id={i}", f"--loader_check_out={tmp / f'loader_{i}.json'}"] for i in range(2)]
  log_paths = [tmp / f"process_{i}.log" for i in range(2)]
  with open(log_paths[0], "w") as log0, open(log_paths[1], "w") as log1:
    codes = _run_together(cmds, [log0, log1], _child_env(2))
  for i, code in enumerate(codes):
    assert code == 0, (f"process {i}: " + ("killed (timeout or the other process failed)" if code is None
                       else f"exit code {code}") + f"\n{log_paths[i].read_text()[-6000:]}")
  checks = []
  for i in range(2):
    with open(tmp / f"loader_{i}.json") as f:
      checks.append(json.load(f))
  return workdir, checks


@pytest.fixture(scope="module")
def single_process_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("single") / "run")
  train.train_and_evaluate(_config(), workdir)
  return workdir


def _restored(config, workdir: str, which: str = "latest") -> dict[str, np.ndarray]:
  state, _ = train.Experiment(config).restore(os.path.join(workdir, "checkpoints"), which)
  return {optim.path_str(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(state["model"])
          if not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)}


def _metrics(workdir: str) -> dict:
  with open(os.path.join(workdir, "metrics.json")) as f:
    return json.load(f)


def _assert_metrics_close(a: dict, b: dict) -> None:
  for split in ("val", "test"):
    for key in ("mae", "mse"):
      np.testing.assert_allclose(a[split]["all"][key], b[split]["all"][key], rtol=1e-5, err_msg=f"{split}/{key}")
    assert a[split]["all"]["count"] == b[split]["all"]["count"] == multihost_worker.EVAL_ROWS


def test_two_processes_equal_one_process(two_process_run, single_process_run):
  multi_dir, _ = two_process_run
  config = _config()
  multi, single = _restored(config, multi_dir), _restored(config, single_process_run)
  assert multi.keys() == single.keys() and "fds/running_mean" in multi and "noise_sigma" in multi
  for key in single:
    if np.issubdtype(single[key].dtype, np.integer):
      np.testing.assert_array_equal(multi[key], single[key], err_msg=key)
    else:
      np.testing.assert_allclose(multi[key], single[key], rtol=1e-5, atol=1e-6, err_msg=key)
  assert abs(float(multi["noise_sigma"]) - config.loss.init_noise_sigma) > 1e-3  # σ was trained
  assert np.any(multi["fds/smoothed_mean_last_epoch"] != 0)  # FDS statistics were gathered
  m, s = _metrics(multi_dir), _metrics(single_process_run)
  assert m["step"] == s["step"] == 8
  _assert_metrics_close(m, s)
  _assert_metrics_close(m["last"], s["last"])


def test_one_checkpoint_per_step(two_process_run):
  multi_dir, _ = two_process_run
  steps = sorted(os.listdir(os.path.join(multi_dir, "checkpoints")))
  # max_to_keep=1 plus the best step (the last step when it is the best); no per-process or temporary copies
  assert steps in (["8"], ["4", "8"]), steps


def test_restore_in_one_process_on_one_device(two_process_run, tmp_path):
  """The 2-process × 2-device checkpoint evaluated by 1 process on 1 device gives its metrics."""
  multi_dir, _ = two_process_run
  copy = str(tmp_path / "run")
  shutil.copytree(multi_dir, copy)  # evaluate rewrites the predictions files the next test reads
  config = _config()
  with config.unlocked():
    config.mesh.shape = (1,)
  result = train.evaluate(config, copy, "best")
  saved = _metrics(multi_dir)
  assert result["step"] == saved["step"]
  _assert_metrics_close(result, saved)


def test_uneven_eval_split_predicted_exactly_once(two_process_run):
  """Predictions saved by the 2-process run equal a numpy forward pass over all 37 test rows, in
  order; the metrics are those of these 37 rows (no padded row counted, none dropped)."""
  multi_dir, _ = two_process_run
  config = _config()
  params = _restored(config, multi_dir, "best")
  test = get_data(config.data, seed=config.seed).splits["test"]
  x = np.stack([np.asarray(test[i]["inputs"]) for i in range(len(test))]).astype(np.float64)
  y = np.stack([np.asarray(test[i]["targets"]) for i in range(len(test))]).astype(np.float64)
  hidden = np.maximum(x @ params["encoder/layers/0/kernel"] + params["encoder/layers/0/bias"], 0)
  expected = hidden @ params["head/kernel"] + params["head/bias"]  # eval mode: no FDS calibration
  saved = np.load(os.path.join(multi_dir, "predictions_test.npz"))
  assert saved["preds"].shape == (multihost_worker.EVAL_ROWS, 1)
  np.testing.assert_allclose(saved["preds"], expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(saved["targets"], y, rtol=1e-6)
  metrics = _metrics(multi_dir)["test"]["all"]
  assert metrics["count"] == multihost_worker.EVAL_ROWS
  np.testing.assert_allclose(metrics["mae"], np.mean(np.abs(expected - y)), rtol=1e-5)
  np.testing.assert_allclose(metrics["mse"], np.mean((expected - y) ** 2), rtol=1e-5)


def test_each_process_reads_its_own_rows(two_process_run):
  """Global mesh [p0, p0, p1, p1]: process p reads rows 4p..4p+3 of each batch of 8; the 37 real
  rows (3 padded) are read exactly once across the processes."""
  _, checks = two_process_run
  order = np.resize(np.arange(multihost_worker.EVAL_ROWS), 40).reshape(5, 8)
  valid = (np.arange(40) < multihost_worker.EVAL_ROWS).reshape(5, 8)
  for p, check in enumerate(checks):
    assert check["process"] == p
    np.testing.assert_array_equal(check["local_rows"], order[:, 4 * p:4 * p + 4])
    np.testing.assert_array_equal(check["local_valid"], valid[:, 4 * p:4 * p + 4])
  read = np.concatenate([np.asarray(c["local_rows"])[np.asarray(c["local_valid"])] for c in checks])
  np.testing.assert_array_equal(np.sort(read), np.arange(multihost_worker.EVAL_ROWS))


def test_interleaved_mesh_assembles_global_batches_in_order(two_process_run):
  """Mesh [p0, p1, p0, p1] (a process owns rows {0,1,4,5} or {2,3,6,7}): the global batches still
  hold rows 0..7, 8..15, ... in order on every process."""
  _, checks = two_process_run
  order = np.resize(np.arange(multihost_worker.EVAL_ROWS), 40).reshape(5, 8)
  valid = (np.arange(40) < multihost_worker.EVAL_ROWS).reshape(5, 8)
  for check in checks:
    assert [p for p, _ in check["interleaved_devices"]] == [0, 1, 0, 1]
    np.testing.assert_array_equal(check["global_rows"], order)
    np.testing.assert_array_equal(check["global_valid"], valid)


# -- start-up arguments (no process is started) ---------------------------------------------------


def test_initialize_is_a_no_op_unless_asked():
  assert distributed.initialize(environ={}) is False
  assert distributed.initialize(environ={distributed.ENV_SWITCH: "0"}) is False
  assert jax.process_count() == 1


@pytest.mark.parametrize("kwargs, message", [
  ({"coordinator_address": "localhost"}, "HOST:PORT"),
  ({"coordinator_address": "10.0.0.1:port"}, "HOST:PORT"),
  ({"num_processes": 0}, "num_processes must be >= 1"),
  ({"num_processes": 2, "process_id": 2}, r"process_id must be in \[0, num_processes\)"),
  ({"process_id": -1}, "process_id must be in"),
])
def test_initialize_rejects_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    distributed.initialize(**kwargs)


def test_env_switch_rejects_unknown_values():
  with pytest.raises(ValueError, match="DIRJAX_DISTRIBUTED='maybe'"):
    distributed.initialize(environ={distributed.ENV_SWITCH: "maybe"})


def test_env_switch_without_a_detectable_cluster_names_the_flags():
  code = "from dirjax import distributed; distributed.initialize()"
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**_child_env(1), distributed.ENV_SWITCH: "1"},
                        capture_output=True, text=True, timeout=60)
  assert proc.returncode != 0
  assert "coordinator_address should be defined" in proc.stderr and "--num_processes" in proc.stderr
