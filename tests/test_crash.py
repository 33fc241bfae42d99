"""Crash-consistent workdirs: kills at every checkpoint phase, divergence, changed configs, bad statistics
inputs, negative weights, half-written files and eval on wrong workdirs.

The kill test runs `tests/crash_worker.py` (`dirjax.main` on a 4-epoch synthetic run with FDS, BMC
and dropout, `max_to_keep=1`) in a subprocess that `os._exit`s at one moment, then runs the same
command again and compares final parameters (latest and best checkpoint) and `metrics.json` with an
uninterrupted run, bit for bit.
"""

import glob
import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dirjax import checkpoint, fds as fds_lib, losses, priors, train, writers
from dirjax.data import nyud2, stsb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crash_worker  # noqa: E402
import fixtures_nyud2  # noqa: E402
from test_data_stsb import _config as stsb_config, make_stsb  # noqa: E402

WORKER = os.path.join(ROOT, "tests", "crash_worker.py")
KILLED = 9  # os._exit code of the worker's kill


def _run_worker(workdir: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
  cmd = [sys.executable, WORKER, f"--config={WORKER}", f"--workdir={workdir}"]
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return subprocess.run(cmd + ([f"--kill_at={kill_at}"] if kill_at else []), cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


def _leaves(state) -> list[np.ndarray]:
  return [np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
          for x in jax.tree.leaves(state)]


def _final(experiment: train.Experiment, workdir: str) -> dict:
  """Latest and best (state, meta) and metrics.json of a finished workdir."""
  directory = os.path.join(workdir, "checkpoints")
  with open(os.path.join(workdir, "metrics.json")) as f:
    metrics = json.load(f)
  return {"latest": experiment.restore(directory, "latest"), "best": experiment.restore(directory, "best"),
          "metrics": metrics}


def _assert_same_run(got: dict, want: dict) -> None:
  assert got["metrics"] == want["metrics"]
  for which in ("latest", "best"):
    assert got[which][1] == want[which][1]
    for a, b in zip(_leaves(got[which][0]), _leaves(want[which][0]), strict=True):
      np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The uninterrupted run of the worker's command, and an Experiment to restore its checkpoints."""
  workdir = str(tmp_path_factory.mktemp("uninterrupted"))
  proc = _run_worker(workdir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  config = crash_worker.get_config()
  config.lock()
  experiment = train.Experiment(config)
  return experiment, _final(experiment, workdir)


# Saves of the run: steps 4, 8 (evaluated), 12, 16 (evaluated, final). With the former two managers
# the calls were latest 4, latest 8, best 8, latest 12, latest 16, best 16: `committed:2` is the
# kill between the two commits of step 8, `committed:5` between those of step 16.
KILL_MOMENTS = ([f"before_save:{n}" for n in (1, 2, 4)] + [f"in_flight:{n}" for n in (1, 2, 3, 4)]
                + [f"committed:{n}" for n in (1, 2, 3, 4, 5)] + ["json:metrics.json", "json:config_changes"])
QUICK = ("committed:2", "in_flight:4", "json:metrics.json")


@pytest.mark.parametrize("moment", [m if m in QUICK else pytest.param(m, marks=pytest.mark.slow)
                                    for m in KILL_MOMENTS])
def test_kill_at_any_moment_then_rerun_is_the_uninterrupted_run(tmp_path, reference, moment):
  experiment, want = reference
  workdir = str(tmp_path / "run")
  killed = _run_worker(workdir, moment)
  assert killed.returncode in (KILLED, 0), killed.stderr[-3000:]  # 0: the moment never came (no 5th save)
  rerun = _run_worker(workdir)  # the same command again
  assert rerun.returncode == 0, f"workdir left unrecoverable after a kill at {moment}:\n{rerun.stderr[-3000:]}"
  _assert_same_run(_final(experiment, workdir), want)
  assert not glob.glob(os.path.join(workdir, "*.tmp-*"))  # the killed writer's temp file is cleared by the rerun
  assert killed.returncode == KILLED or moment in ("committed:5", "json:config_changes")


# ------------------------------------------------------------------------------------------------
# Resume with another run's config.


def tiny(**overrides) -> ml_collections.ConfigDict:
  c = crash_worker.get_config()
  c.num_epochs = 2
  c.update(overrides)
  return c


def _snapshot(workdir) -> dict[str, bytes]:
  out = {}
  for root, _, files in os.walk(workdir):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, workdir)] = f.read()
  return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("finished"))
  train.train_and_evaluate(tiny(), workdir)
  return workdir


def test_resume_with_another_batch_size_stops_before_writing(finished):
  before = _snapshot(finished)
  for allow in (False, True):  # no override can change the step geometry
    with pytest.raises(checkpoint.RunMismatchError, match=r"(?s)batch_size: 8 \(checkpoints\) -> 16 \(now\).*"
                       r"run.steps_per_epoch: 4 \(checkpoints\) -> 2 \(now\).*new workdir"):
      train.train_and_evaluate(tiny(batch_size=16, checkpoint={"allow_config_change": allow}), finished)
  assert _snapshot(finished) == before


def test_resume_with_another_model_keeps_config_json(finished):
  before = _snapshot(finished)
  with pytest.raises(checkpoint.RunMismatchError, match=r"model.hidden: \[8\] \(checkpoints\) -> \[16\] \(now\)"):
    train.train_and_evaluate(tiny(model={"hidden": (16,)}), finished)
  # Even with the override, the checkpoint cannot hold that model: nothing is written either.
  with pytest.raises(checkpoint.CheckpointError, match="does not match the target state"):
    train.train_and_evaluate(tiny(model={"hidden": (16,)}, checkpoint={"allow_config_change": True}), finished)
  assert _snapshot(finished) == before
  assert tuple(train.load_config(finished).model.hidden) == (8,)


def test_resume_with_changed_lr_needs_the_override_and_is_recorded(tmp_path):
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny(num_epochs=1), workdir)
  with pytest.raises(checkpoint.RunMismatchError, match=r"(?s)num_epochs: 1 .*-> 2.*optimizer.lr: 0.01 .*-> 0.02"):
    train.train_and_evaluate(tiny(optimizer={"lr": 2e-2}), workdir)
  # Result-neutral fields (logging, threads, checkpoint keeping) may change without the override.
  train.train_and_evaluate(tiny(num_epochs=1, log_every_steps=1, checkpoint={"max_to_keep": 2}), workdir)
  train.train_and_evaluate(tiny(optimizer={"lr": 2e-2}, checkpoint={"allow_config_change": True}), workdir)
  assert train.load_config(workdir).optimizer.lr == 2e-2
  with open(os.path.join(workdir, "config_changes.json")) as f:
    history = json.load(f)
  assert [c["field"] for c in history[0]["changes"]] == ["checkpoint.max_to_keep", "log_every_steps"]
  # Compared with the identity saved in the checkpoints (the neutral change saved none: the run was done).
  assert {(c["field"], c["old"], c["new"]) for c in history[1]["changes"]} == {
    ("num_epochs", 1, 2), ("optimizer.lr", 1e-2, 2e-2)}
  assert history[1]["resumed_at_step"] == 4


# ------------------------------------------------------------------------------------------------
# Divergence: the last finite state survives max_to_keep=1.


def test_divergence_keeps_the_last_finite_checkpoint(tmp_path, monkeypatch):
  config = tiny(num_epochs=3)
  clean = train.train_and_evaluate(config, str(tmp_path / "clean"))
  build_steps = train.Experiment._build_steps

  def poisoned(self):  # the 8th step (last of epoch 1) returns NaN parameters with a finite loss
    build_steps(self)
    step, calls = self.train_step, [0]

    def train_step(state, *args):
      state, counters = step(state, *args)
      calls[0] += 1
      if calls[0] == 8:
        state["model"]["head"]["bias"][...] = jnp.full_like(state["model"]["head"]["bias"][...], jnp.nan)
      return state, counters

    self.train_step = train_step

  monkeypatch.setattr(train.Experiment, "_build_steps", poisoned)
  workdir = str(tmp_path / "diverged")
  with pytest.raises(FloatingPointError, match=r"not saving checkpoint step 8.*head/bias.*step 4\) is kept"):
    train.train_and_evaluate(config, workdir)
  monkeypatch.undo()
  experiment = train.Experiment(config)
  state, meta = experiment.restore(os.path.join(workdir, "checkpoints"), "latest")
  assert meta["step"] == 4 and all(np.all(np.isfinite(x)) for x in _leaves(state) if x.dtype.kind == "f")
  resumed = train.train_and_evaluate(config, workdir)  # the same command, the transient fault gone
  assert resumed["val"] == clean["val"] and resumed["last"] == clean["last"]


# ------------------------------------------------------------------------------------------------
# FDS statistics never absorb NaN/inf.


def _numpy_moments(features, buckets, rows):
  count = np.bincount(buckets, minlength=rows)
  mean = np.zeros((rows, features.shape[1]))
  m2 = np.zeros_like(mean)
  for b in range(rows):
    x = features[buckets == b].astype(np.float64)
    if len(x):
      mean[b], m2[b] = x.mean(0), ((x - x.mean(0)) ** 2).sum(0)
  return count, mean, m2


def test_fds_statistics_skip_non_finite_features():
  rng = np.random.default_rng(0)
  features = rng.normal(size=(12, 3)).astype(np.float32)
  buckets = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4])
  features[4, 1], features[9, 0] = np.nan, np.inf
  sums = fds_lib.accumulate(fds_lib.BucketSums.zeros(5, 3), jnp.asarray(features), jnp.asarray(buckets))
  keep = np.isfinite(features).all(axis=1)
  count, mean, m2 = _numpy_moments(features[keep], buckets[keep], 7)
  np.testing.assert_array_equal(np.asarray(sums.count), count)
  np.testing.assert_allclose(np.asarray(sums.mean), mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(sums.m2), m2, rtol=1e-5, atol=1e-6)


def test_fds_calibration_stays_finite_after_a_nan_epoch():
  rng = np.random.default_rng(1)
  layer = fds_lib.FDS(4, bucket_num=10, start_update=0, start_smooth=1, ks=3)
  labels = np.repeat(np.arange(10), 4)[:, None].astype(np.float32)
  for epoch in range(3):
    features = rng.normal(size=(40, 4)).astype(np.float32)
    if epoch == 0:
      features[5, 2] = np.nan
    buckets = layer.buckets(jnp.asarray(labels))[..., 0]
    layer.update(fds_lib.accumulate(layer.zero_sums(), jnp.asarray(features), buckets), epoch)
  # A bucket whose moments are non-finite (sums built elsewhere) leaves the statistics unchanged.
  bad = layer.zero_sums()._replace(count=jnp.ones(12, jnp.int32), mean=jnp.full((12, 4), jnp.nan))
  before = np.asarray(layer.running_mean[...])
  layer.update_running_stats(bad, 3)
  np.testing.assert_array_equal(np.asarray(layer.running_mean[...]), before)
  layer.train()
  out = layer(jnp.asarray(rng.normal(size=(40, 4)), jnp.float32), jnp.asarray(labels), 3)
  assert np.all(np.isfinite(np.asarray(out)))
  for name in ("running_mean", "running_var", "smoothed_mean_last_epoch", "smoothed_var_last_epoch"):
    assert np.all(np.isfinite(np.asarray(getattr(layer, name)[...]))), name


# ------------------------------------------------------------------------------------------------
# Negative per-sample weights.


@pytest.mark.parametrize("name", losses.REGRESSION_LOSSES)
def test_negative_weights_are_rejected_when_concrete(name):
  pred, target = np.zeros((4, 1), np.float32), np.ones((4, 1), np.float32)
  with pytest.raises(ValueError, match=r"weights must be finite and >= 0; 1 of 4 are not \(e.g. \[-1.0\]\)"):
    getattr(losses, name)(pred, target, weights=np.array([1.0, -1.0, 1.0, 1.0]))
  # Padding rows are not checked; traced weights cannot be (documented: check them where they are built).
  masked = getattr(losses, name)(pred, target, weights=np.array([1.0, -1.0, 1.0, 1.0]), mask=np.array([1, 0, 1, 1]))
  traced = jax.jit(lambda w: getattr(losses, name)(pred, target, weights=w))(np.ones(4, np.float32))
  assert np.isfinite(float(masked)) and np.isfinite(float(traced))


# ------------------------------------------------------------------------------------------------
# Half-written files.


def _truncate(path):
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.truncate(size // 2)


def test_truncated_stsb_cache_names_the_file(tmp_path):
  root = make_stsb(str(tmp_path / "d"))
  config = stsb_config(root, str(tmp_path / "cache"))
  cache = stsb.prepare(root, config.cache_dir, encoder="tokens", max_seq_len=40)
  _truncate(cache)
  with pytest.raises(writers.CorruptFileError, match=f"{cache} is unreadable or half-written.*delete it"):
    stsb.get_data(config, seed=0)


@pytest.fixture(scope="module")
def nyud2_dir(tmp_path_factory):
  return fixtures_nyud2.make_nyud2(str(tmp_path_factory.mktemp("nyud2")))


def test_truncated_nyud2_mask_names_the_file(nyud2_dir):
  config = ml_collections.ConfigDict({"name": "nyud2_dir", "data_dir": nyud2_dir, "loss_min_depth": 0.0,
                                      "color_augment": False})
  mask = nyud2.prepare(nyud2_dir)
  _truncate(mask)
  with pytest.raises(writers.CorruptFileError, match=f"{mask} is unreadable or half-written.*delete it"):
    nyud2.get_data(config, seed=0)
  os.remove(mask)


def test_interrupted_mask_preparation_leaves_no_file(nyud2_dir, monkeypatch):
  def interrupted_save(f, array, **kwargs):
    f.write(b"\x93NUMPY half")
    raise KeyboardInterrupt

  monkeypatch.setattr(np, "save", interrupted_save)
  with pytest.raises(KeyboardInterrupt):
    nyud2.prepare(nyud2_dir)
  monkeypatch.undo()
  assert not os.path.exists(os.path.join(nyud2_dir, nyud2.MASK_FILE))
  assert not glob.glob(os.path.join(nyud2_dir, "*.tmp-*"))
  assert np.load(nyud2.prepare(nyud2_dir)).shape == (3, *nyud2.IMAGE_SIZE)  # the next run rebuilds it


def test_gmm_prior_with_negative_variance_is_rejected_at_load(tmp_path):
  path = str(tmp_path / "prior.npz")
  np.savez(path, format_version=np.array(1), kind=np.array("gmm"), means=np.zeros((2, 1), np.float32),
           covs=np.array([[[1.0]], [[-0.5]]], np.float32), weights=np.array([0.5, 0.5], np.float32))
  with pytest.raises(ValueError, match=f"{path} holds an invalid gmm prior: covs must be positive definite.*"
                     r"component 1 has eigenvalue -0.5"):
    priors.load_prior(path, expected_kind="gmm")


# ------------------------------------------------------------------------------------------------
# Corrupt checkpoints and eval on wrong workdirs.


def test_corrupt_checkpoint_is_one_clear_error_without_tracebacks(finished, tmp_path):
  import shutil
  workdir = str(tmp_path / "copy")
  shutil.copytree(finished, workdir)
  for root, _, files in os.walk(os.path.join(workdir, "checkpoints", "8", "state")):
    for name in files:
      if not name.startswith("_"):
        _truncate(os.path.join(root, name))
  cmd = [sys.executable, WORKER, f"--config={WORKER}", "--config.num_epochs=2", f"--workdir={workdir}",
         "--mode=eval", "--checkpoint=latest"]
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  err = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300).stderr
  assert re.search(f"CheckpointError: cannot (read|restore) checkpoint step 8 in {workdir}/checkpoints.*delete", err)
  assert "Event loop is closed" not in err and "never retrieved" not in err, err[-3000:]
  assert err.count("Traceback") == 0, err[-3000:]  # the CLI prints user errors as one line
  assert re.search(r"^dirjax: error: CheckpointError: .*--verbose", err, re.MULTILINE), err[-3000:]


def test_eval_on_empty_or_mistyped_workdir_creates_nothing(tmp_path):
  for workdir in (tmp_path / "mistyped", tmp_path / "empty"):
    if workdir.name == "empty":
      workdir.mkdir()
    with pytest.raises(checkpoint.CheckpointError, match=f"no checkpoint in {workdir}/checkpoints.*--mode=train"):
      train.evaluate(tiny(), str(workdir))
  assert sorted(os.listdir(tmp_path)) == ["empty"] and os.listdir(tmp_path / "empty") == []


def test_eval_on_unwritable_workdir_fails_before_any_work(finished, monkeypatch):
  def no_write(*args, dir=None, **kwargs):
    raise PermissionError(30, "Read-only file system", dir)

  monkeypatch.setattr(writers.tempfile, "TemporaryFile", no_write)
  monkeypatch.setattr(train, "Experiment", lambda *a: pytest.fail("evaluation started before the check"))
  with pytest.raises(PermissionError, match=f"workdir .* {finished} is not writable.*Read-only file system"):
    train.evaluate(tiny(), finished)


def test_missing_or_unwritable_paths_fail_before_work(tmp_path):
  (tmp_path / "file").write_text("x")
  with pytest.raises(NotADirectoryError, match=f"{tmp_path}/file is a file"):
    train.train_and_evaluate(tiny(), str(tmp_path / "file" / "run"))
  with pytest.raises(ValueError, match="no such file"):
    train.train_and_evaluate(tiny(loss={"name": "gai", "prior": str(tmp_path / "missing.npz")}), str(tmp_path / "r"))
  assert sorted(os.listdir(tmp_path)) == ["file"]
