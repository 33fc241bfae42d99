"""One-step smoke test of every config whose data is generated (flax examples/imagenet train_test.py
style): the real `train_and_evaluate` on the config's `smoke` variant, all of its variants."""

import ast
import glob
import importlib.util
import inspect
import json
import os

import numpy as np
import pytest
from flax import nnx

from dirjax import checkpoint, reporting, train
from dirjax.data import synthetic

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "configs")


def _load(path: str):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _generated_configs() -> list[str]:
  """Experiment files (a `get_config()` callable without arguments; helpers like `*_common.py`
  are skipped) whose data needs no files; the data engineers test their own benchmark configs."""
  found = []
  for path in sorted(glob.glob(os.path.join(CONFIG_DIR, "*.py"))):
    get_config = getattr(_load(path), "get_config", None)
    if get_config is None or any(p.default is p.empty for p in inspect.signature(get_config).parameters.values()):
      continue
    if get_config().data.name in synthetic._BUILDERS:
      found.append(path)
  return found


def _run_smoke(path: str, workdir: str, only: tuple[str, ...] = ()):
  config = _load(path).get_config("smoke")
  config.lock()
  if only:
    for name in list(config.variants.keys()):
      if name not in only:
        with config.variants.unlocked():
          del config.variants[name]
  return config, train.train_and_evaluate(config, workdir)


def _check_run(workdir: str, result: dict, config) -> None:
  for split in config.eval.splits:
    for source in (result, result["last"]):
      assert np.isfinite(source[split]["all"]["mse"])
      assert source[split]["all"]["count"] == config.data[f"num_{split}"]
  with open(os.path.join(workdir, "metrics.json")) as f:
    assert json.load(f)["epoch"] == 0
  with checkpoint.Checkpointer(os.path.join(workdir, "checkpoints")) as ckpt:
    assert ckpt.best_step() is not None
  assert glob.glob(os.path.join(workdir, "events.out.tfevents.*"))


def _experiment_files() -> list[str]:
  """Every config file except the `*_common.py` dataset bases."""
  return [p for p in sorted(glob.glob(os.path.join(CONFIG_DIR, "*.py"))) if not p.endswith("_common.py")]


@pytest.mark.parametrize("path", _experiment_files(), ids=os.path.basename)
def test_experiment_file_names_its_run_command(path):
  """A config file is self-describing: its docstring holds the command that runs it."""
  with open(path) as f:
    doc = ast.get_docstring(ast.parse(f.read())) or ""
  assert f"python -m dirjax.main --config=configs/{os.path.basename(path)}" in doc, path


@pytest.mark.parametrize("path", _experiment_files(), ids=os.path.basename)
def test_experiment_file_writes_its_method(path):
  """From a `*_common.py` an experiment takes only the dataset base and the smoke switch; the method's
  settings are lines of the experiment file, so `diff` of two experiments shows the methods."""
  shared = {"base_config", "for_arg", "INIT_FROM_REQUIRED"}
  with open(path) as f:
    tree = ast.parse(f.read())
  used = {node.attr for node in ast.walk(tree)
          if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id.endswith("_common")}
  used |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
           and (node.module or "").endswith("_common") for alias in node.names}
  assert used <= shared, (path, sorted(used - shared))


def test_generated_configs_found():
  names = {os.path.basename(p) for p in _generated_configs()}
  assert {"synthetic_1d.py", "synthetic_2d.py", "synthetic_images.py"} <= names


@pytest.mark.parametrize("name", ["synthetic_1d.py", "synthetic_2d.py"])
def test_linear_config_one_step_all_variants(name, tmp_path):
  config, results = _run_smoke(os.path.join(CONFIG_DIR, name), str(tmp_path))
  assert list(results) == list(config.variants.keys())
  for variant, result in results.items():
    _check_run(str(tmp_path / variant), result, dict(reporting.variant_configs(config))[variant])
  for artefact in ("comparison.json", "comparison.md", "predictions.png"):
    assert (tmp_path / artefact).stat().st_size > 0
  table = (tmp_path / "comparison.md").read_text()
  assert all(f"| {v} |" in table for v in config.variants.keys())


def test_images_config_one_step_fds(tmp_path):
  """The ResNet + augmentation + FDS path of `synthetic_images` (compiling a ResNet is the cost)."""
  config, results = _run_smoke(os.path.join(CONFIG_DIR, "synthetic_images.py"), str(tmp_path), only=("fds",))
  _check_run(str(tmp_path / "fds"), results["fds"], dict(reporting.variant_configs(config))["fds"])
  assert set(reporting.SHOTS) <= set(results["fds"]["test"])  # shot groups reported


def test_images_config_one_step_all_variants(tmp_path):
  config, results = _run_smoke(os.path.join(CONFIG_DIR, "synthetic_images.py"), str(tmp_path))
  assert list(results) == list(config.variants.keys())
  assert (tmp_path / "predictions.png").stat().st_size > 0


@pytest.mark.slow
def test_synthetic_1d_benchmark_balanced_mse_wins(tmp_path):
  """The README command: every Balanced-MSE variant beats MSE and Reweight by a wide margin (the
  reference synthetic_benchmark's last-model test MSE, seeds 0–2: MSE ≈ 4.7–5.2, Reweight ≈ 1.1–1.9,
  GAI/BMC ≈ 0.0004–0.28)."""
  config = _load(os.path.join(CONFIG_DIR, "synthetic_1d.py")).get_config()
  config.mesh.shape = (1,)  # one device: no per-step sync needed
  config.lock()
  results = train.train_and_evaluate(config, str(tmp_path))
  test_mse = {name: r["test"]["all"]["mse"] for name, r in results.items()}
  baseline = min(test_mse["mse"], test_mse["reweight"])
  for name in ("gai", "bmc", "gai_learnable_sigma", "bmc_learnable_sigma"):
    assert test_mse[name] < 0.2 * baseline, (name, test_mse)
  assert test_mse["reweight"] < test_mse["mse"]


@pytest.mark.parametrize("variant", ["ranksim", "ordinal_entropy"])
def test_images_config_one_step_representation_regularisers(variant, tmp_path):
  """The ResNet path of `synthetic_images` with a regulariser on the encoder's features."""
  config, results = _run_smoke(os.path.join(CONFIG_DIR, "synthetic_images.py"), str(tmp_path), only=(variant,))
  _check_run(str(tmp_path / variant), results[variant], dict(reporting.variant_configs(config))[variant])


def test_images_config_one_step_vir(tmp_path):
  """The ResNet path of `synthetic_images` with VIR's head (PRM statistics pass) and its NIG loss."""
  config, results = _run_smoke(os.path.join(CONFIG_DIR, "synthetic_images.py"), str(tmp_path), only=("vir",))
  _check_run(str(tmp_path / "vir"), results["vir"], dict(reporting.variant_configs(config))["vir"])
  saved = np.load(os.path.join(tmp_path, "vir", "predictions_test.npz"))
  assert saved["uncertainty"].shape == saved["preds"].shape and np.all(saved["uncertainty"] > 0)


def test_images_rrt_stage2_restores_the_backbone_and_trains_only_the_head(tmp_path):
  """`synthetic_images.py:rrt_smoke` on a finished vanilla run: every parameter outside the head equals
  the stage-1 best checkpoint after the step, the head moved, and σ started at the stage-1 val RMSE
  recomputed from its saved predictions, times the config's scale 0.5. (BatchNorm running statistics are not parameters: they keep
  updating in training mode, as in the reference: docs/deviations.md R8.)"""
  module = _load(os.path.join(CONFIG_DIR, "synthetic_images.py"))
  stage1 = module.get_config("smoke")
  stage1.variants = {"vanilla": {}}
  stage1.lock()
  train.train_and_evaluate(stage1, str(tmp_path))
  stage1_dir = tmp_path / "vanilla"
  saved = np.load(stage1_dir / "predictions_val.npz")
  rmse = np.sqrt(np.mean((saved["preds"].astype(np.float64) - saved["targets"]) ** 2))
  stage2 = module.get_config("rrt_smoke")
  assert stage2.train_only == "head" and stage2.loss.init_noise_sigma_rule == "stage1_val_rmse"
  assert stage2.loss.init_noise_sigma_rule_scale == 0.5
  stage2.init_from = str(stage1_dir)
  stage2.lock()
  results = train.train_and_evaluate(stage2, str(tmp_path / "stage2"))
  assert list(results) == ["vanilla", "bmc", "gai", "bni", "dist_loss"]
  stage1_config = dict(reporting.variant_configs(stage1))["vanilla"]
  before, _ = train.Experiment(stage1_config).restore(str(stage1_dir / "checkpoints"), "best")
  flat = lambda state: {"/".join(map(str, path)): np.asarray(x[...])
                        for path, x in nnx.to_flat_state(state["model"].filter(nnx.Param))}
  for variant, cfg in reporting.variant_configs(stage2):
    after, _ = train.Experiment(cfg).restore(str(tmp_path / "stage2" / variant / "checkpoints"), "latest")
    old, new = flat(before), flat(after)
    if variant in ("bmc", "gai", "bni"):
      assert float(new.pop("noise_sigma")) != pytest.approx(0.5 * rmse, rel=1e-6)  # σ trained from ...
    heads = [k for k in new if k.startswith("head")]
    assert heads and all(not np.array_equal(new[k], old[k]) for k in heads)
    for key in set(new) - set(heads):
      np.testing.assert_array_equal(new[key], old[key], err_msg=f"{variant}: {key} changed")
  bni = dict(reporting.variant_configs(stage2))["bni"]
  sigma0 = float(train.Experiment(bni).fresh_state()["model"]["noise_sigma"][...])
  assert sigma0 == pytest.approx(0.5 * rmse, rel=1e-5)  # ... σ₀ = half the stage-1 val RMSE


def test_images_rnc_two_stages_pretrain_then_probe_the_frozen_encoder(tmp_path):
  """`synthetic_images.py:rnc_smoke` (RnC alone over two views, no regression loss) then `:rnc_linear_smoke`
  on it: after the probe's step every parameter outside the head equals the stage-1 encoder, the head moved."""
  module = _load(os.path.join(CONFIG_DIR, "synthetic_images.py"))
  stage1 = module.get_config("rnc_smoke")
  assert stage1.loss.name == "none" and stage1.data.two_views and list(stage1.regularizers) == ["rnc"]
  stage1.lock()
  train.train_and_evaluate(stage1, str(tmp_path / "stage1"))
  stage2 = module.get_config("rnc_linear_smoke")
  assert (stage2.train_only, stage2.loss.name, stage2.optimizer.name) == ("head", "l1", "sgd") and not stage2.regularizers
  stage2.init_from = str(tmp_path / "stage1")
  stage2.lock()
  result = train.train_and_evaluate(stage2, str(tmp_path / "stage2"))
  _check_run(str(tmp_path / "stage2"), result, stage2)
  flat = lambda state: {"/".join(map(str, path)): np.asarray(x[...])
                        for path, x in nnx.to_flat_state(state["model"].filter(nnx.Param))}
  old = flat(train.Experiment(stage1).restore(str(tmp_path / "stage1" / "checkpoints"), "best")[0])
  new = flat(train.Experiment(stage2).restore(str(tmp_path / "stage2" / "checkpoints"), "latest")[0])
  heads = [k for k in new if k.startswith("head")]
  assert heads and all(not np.array_equal(new[k], old[k]) for k in heads)
  for key in set(new) - set(heads):
    np.testing.assert_array_equal(new[key], old[key], err_msg=f"{key} changed")
