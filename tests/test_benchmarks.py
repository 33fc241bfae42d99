"""The benchmark scripts (`scripts/benchmark.py`, `scripts/benchmark_torch.py`) on CPU with `--small`.

No timing is asserted: the runs only have to finish and report every requested row with positive,
finite, self-consistent rates (images/s = batch × steps/s by definition). Slow (`--runslow`): the
full dirjax `--small` run (12 XLA compilations of a ResNet-18 step, ~3 CPU-minutes) and
torch.compile on CPU; the fast tests run dirjax's FDS row in bf16 (+ the FDS epoch work) and every
PyTorch method in both eager variants (fp32 and bf16).
The torch baselines' FDS and Balanced-MSE pieces are checked against numpy re-derivations.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import logsumexp

from scripts import benchmark

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = benchmark.SMALL
RESNET18_FEATURES = 512  # ResNet-18's encoding width (the last stage's 512 channels)


def run_script(module: str, tmp_path, *args: str) -> tuple[dict, str]:
  """`python -m <module> --small --json ...` on one CPU device and one thread; (JSON, stdout)."""
  path = tmp_path / f"{module.rsplit('.', 1)[-1]}.json"
  env = {**os.environ, "PYTHONPATH": REPO, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu", "OMP_NUM_THREADS": "1"}
  proc = subprocess.run([sys.executable, "-m", module, "--small", "--json", str(path), *args],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads(path.read_text()), proc.stdout


def check_rates(row: dict, batch: int, steps: int) -> None:
  assert math.isfinite(row["images_per_s"]) and row["images_per_s"] > 0
  assert row["steps"] == steps
  assert row["images_per_s"] == pytest.approx(batch * row["steps_per_s"])
  assert row["step_ms"] == pytest.approx(1e3 / row["steps_per_s"])
  assert math.isfinite(row["compile_s"]) and row["compile_s"] >= 0


def check_fds_epoch(rows: list[dict]) -> None:
  for r in rows:
    assert (r["samples"], r["feature_dim"], r["buckets"]) == (SMALL["epoch_samples"], RESNET18_FEATURES, 100)
    assert math.isfinite(r["feature_pass_images_per_s"]) and r["feature_pass_images_per_s"] > 0
    assert r["feature_pass_epoch_s"] == pytest.approx(r["samples"] / r["feature_pass_images_per_s"])
    assert math.isfinite(r["statistics_s"]) and r["statistics_s"] > 0


def check_jax(result: dict, stdout: str, methods: list[str], dtypes: list[str], steps: int) -> None:
  assert result["framework"] == "dirjax" and result["settings"]["small"]
  rows = {(r["method"], r["dtype"]): r for r in result["train_step"]}
  assert set(rows) == {(m, d) for m in methods for d in dtypes}
  for row in rows.values():
    check_rates(row, SMALL["batch"], steps)
    assert math.isfinite(row["mean_loss"])
    assert row["step_bytes"] > 0
  assert [r["dtype"] for r in result["fds_epoch"]] == (dtypes if "fds" in methods else [])
  check_fds_epoch(result["fds_epoch"])
  for r in result["fds_epoch"]:
    assert r["statistics_s"] == pytest.approx(r["accumulate_s"] + r["update_s"])
  assert "CPU smoke numbers" in stdout
  for method in methods:
    assert f"\n{method} " in stdout


def check_torch(result: dict, stdout: str, methods: list[str], variants: list[str], steps: int) -> None:
  from scripts import benchmark_torch

  assert result["framework"] == "torch" and result["settings"]["small"]
  rows = {(r["method"], r["variant"]): r for r in result["train_step"]}
  assert set(rows) == {(m, v) for m in methods for v in variants}
  for (method, variant), row in rows.items():
    check_rates(row, SMALL["batch"], steps)
    assert row["dtype"] == benchmark_torch.VARIANTS[variant]["dtype"]
    assert math.isfinite(row["last_loss"])
    assert row["compiled"] in (True, False) and (row["compiled"] or not benchmark_torch.VARIANTS[variant]["compile"]
                                                 or row["compile_error"])
  assert [r["variant"] for r in result["fds_epoch"]] == (variants if "fds" in methods else [])
  check_fds_epoch(result["fds_epoch"])
  assert "CPU smoke numbers" in stdout


# ------------------------------------------------------------------------------------------------
# dirjax script.


def test_jax_benchmark_small_fds_bf16(tmp_path):
  result, stdout = run_script("scripts.benchmark", tmp_path, "--methods", "fds", "--dtypes", "bf16", "--steps", "1")
  check_jax(result, stdout, ["fds"], ["bf16"], steps=1)


@pytest.mark.slow
def test_jax_benchmark_small_every_method_and_dtype(tmp_path):
  result, stdout = run_script("scripts.benchmark", tmp_path)
  check_jax(result, stdout, list(benchmark.METHODS), list(benchmark.DTYPES), steps=SMALL["steps"])


@pytest.mark.parametrize("argv, message", [
  (["--methods", "vanilla,nope"], "choose from"),
  (["--dtypes", "fp16"], "choose from"),
  (["--methods", ""], "choose from"),
  (["--small", "--batch", "0"], "--batch must be >= 1"),
  (["--small", "--steps", "-1"], "--steps must be >= 1"),
])
def test_bad_flags_are_rejected(argv, message):
  with pytest.raises(ValueError, match=message):
    benchmark.main(argv)


@pytest.mark.parametrize("method", benchmark.METHODS)
def test_bench_config_is_the_imdb_recipe_of_the_method(method):
  c = benchmark.bench_config(method, "bf16", benchmark.FULL, bn_groups=None)
  assert (c.batch_size, c.model.name, c.model.dtype, c.model.bn_groups) == (256, "resnet50", "bfloat16", None)
  assert c.reweight.method == {"lds": "sqrt_inv", "fds": "sqrt_inv", "bsam": "sqrt_inv", "dist_loss": "inverse",
                               "vir": "sqrt_inv"}.get(method, "none")
  assert c.reweight.lds == (method in ("lds", "vir"))  # VIR: SQINV + LDS pseudo-counts
  assert c.fds.enabled == (method == "fds")
  assert c.loss.name == {"bmc": "bmc", "gai": "gai", "bni": "bni", "rnc": "none", "uvote": "uvote", "vir": "vir"}.get(
    method, "l1")
  assert c.get("head", {}).get("name", "linear") == {"uvote": "uvote", "vir": "vir"}.get(method, "linear")
  assert (c.train_only, c.init_from) == ("", "")  # the whole network trains, also for BMC/GAI/BNI
  assert c.optimizer.name == ("sgd" if method in ("bsam", "rnc") else "adam")
  assert c.optimizer.get("sam_rho", 0.0) == (0.05 if method == "bsam" else 0.0)
  terms = {"dist_loss": "dist", "ranksim": "ranksim", "ordinal_entropy": "ordinal_entropy", "conr": "conr", "rnc": "rnc"}
  assert list(c.get("regularizers", {})) == ([terms[method]] if method in terms else [])
  assert c.data.two_views == c.data.augment == (method in ("conr", "rnc"))


@pytest.mark.parametrize("method", ["vanilla", "conr"])
def test_generated_batch_has_the_views_the_step_expects(method):
  """A two-view method's batch carries a second image per row (as `data.two_views` batches); one-view
  methods get none."""
  from dirjax import train
  experiment = train.Experiment(benchmark.bench_config(method, "fp32", SMALL, bn_groups=None))
  batch = benchmark.generated_batch(experiment, SMALL)
  assert ("inputs_view2" in batch) == (method == "conr")
  if method == "conr":
    assert batch["inputs_view2"].shape == batch["inputs"].shape
    assert not np.allclose(np.asarray(batch["inputs_view2"]), np.asarray(batch["inputs"]))


def test_age_labels_are_integer_ages_in_the_bucket_range():
  labels = benchmark.age_labels(10_000)
  assert labels.dtype == np.float32 and labels.shape == (10_000,)
  assert np.all(labels == np.floor(labels)) and labels.min() >= 0 and labels.max() <= 99
  assert abs(labels.mean() - 37.5) < 0.5  # floor of N(38, 13²) has mean 37.5
  np.testing.assert_array_equal(labels, benchmark.age_labels(10_000))


def _row(method, dtype, ips, variant=None):
  row = {"method": method, "dtype": dtype, "images_per_s": ips}
  return row if variant is None else {**row, "variant": variant}


def test_compare_pairs_rows_of_the_same_method_and_dtype():
  jax_fp32 = {"framework": "dirjax", "device": "A", "train_step": [_row("vanilla", "fp32", 300.0)], "fds_epoch": []}
  jax_bf16 = {"framework": "dirjax", "device": "A", "train_step": [_row("vanilla", "bf16", 500.0)], "fds_epoch": []}
  torch_result = {"framework": "torch", "device": "B", "fds_epoch": [], "train_step": [
    _row("vanilla", "fp32", 200.0, "reference"), _row("vanilla", "bf16", 400.0, "tuned"),
    _row("vanilla", "bf16", 1000.0, "tuned_eager"), _row("fds", "fp32", 50.0, "reference")]}
  lines = benchmark.compare([torch_result, jax_fp32, jax_bf16]).splitlines()
  rows = [line.split() for line in lines[2:]]
  assert rows == [["vanilla", "fp32", "300.0", "reference", "200.0", "1.50"],
                  ["vanilla", "bf16", "500.0", "tuned", "400.0", "1.25"],
                  ["vanilla", "bf16", "500.0", "tuned_eager", "1000.0", "0.50"]]


def test_compare_flag_reads_two_json_files(tmp_path, capsys):
  jax_path, torch_path = tmp_path / "j.json", tmp_path / "t.json"
  jax_path.write_text(json.dumps({"framework": "dirjax", "device": "A", "fds_epoch": [],
                                  "train_step": [_row("bmc", "bf16", 90.0)]}))
  torch_path.write_text(json.dumps({"framework": "torch", "device": "B", "fds_epoch": [],
                                    "train_step": [_row("bmc", "bf16", 60.0, "tuned")]}))
  benchmark.main(["--compare", str(jax_path), str(torch_path)])
  assert capsys.readouterr().out.splitlines()[-1].split() == ["bmc", "bf16", "90.0", "tuned", "60.0", "1.50"]


# ------------------------------------------------------------------------------------------------
# PyTorch script.


def test_torch_benchmark_small_every_method_eager(tmp_path):
  pytest.importorskip("torch")
  from scripts import benchmark_torch

  variants = ["reference", "tuned_eager"]  # fp32 and bf16
  result, stdout = run_script("scripts.benchmark_torch", tmp_path, "--variants", ",".join(variants))
  check_torch(result, stdout, list(benchmark_torch.METHODS), variants, steps=SMALL["steps"])


@pytest.mark.slow
def test_torch_benchmark_small_compiled(tmp_path):
  """torch.compile's CPU (inductor, C++) compilation of one step takes minutes on 2 cores."""
  pytest.importorskip("torch")
  result, stdout = run_script("scripts.benchmark_torch", tmp_path, "--methods", "vanilla", "--variants", "tuned",
                              "--no-fds-epoch")
  check_torch(result, stdout, ["vanilla"], ["tuned"], steps=SMALL["steps"])


def test_torch_bad_variant_is_rejected():
  pytest.importorskip("torch")
  from scripts import benchmark_torch

  with pytest.raises(ValueError, match="choose from"):
    benchmark_torch.main(["--variants", "reference,fast"])


def _fds_pair(dim: int = 6):
  torch = pytest.importorskip("torch")
  from scripts import benchmark_torch

  loop = benchmark_torch.TorchFDS(dim, torch.device("cpu"), loop=True, num_buckets=10)
  fast = benchmark_torch.TorchFDS(dim, torch.device("cpu"), loop=False, num_buckets=10)
  for name in ("mean", "var", "smoothed_mean", "smoothed_var", "running_mean", "running_var"):
    setattr(fast, name, getattr(loop, name).clone())
  return torch, loop, fast


def test_torch_fds_calibration_loop_and_gather_agree_with_eq5():
  torch, loop, fast = _fds_pair()
  gen = np.random.default_rng(0)
  features = gen.normal(size=(40, 6)).astype(np.float32)
  labels = gen.integers(0, 10, size=(40, 1)).astype(np.float32)
  m1, v1 = loop.mean.numpy(), loop.var.numpy()
  m2, v2 = loop.smoothed_mean.numpy(), loop.smoothed_var.numpy()
  k = labels[:, 0].astype(int)
  expected = (features - m1[k]) * np.sqrt(np.clip(v2[k] / v1[k], 0.1, 10.0)) + m2[k]
  for fds in (loop, fast):
    out = fds(torch.as_tensor(features), torch.as_tensor(labels)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_torch_fds_statistics_loop_and_vectorized_agree_with_numpy():
  torch, loop, fast = _fds_pair()
  gen = np.random.default_rng(1)
  features = gen.normal(2.0, 3.0, size=(200, 6)).astype(np.float32)
  labels = gen.integers(0, 9, size=200).astype(np.float32)  # bucket 9 stays empty
  labels[0] = 3.0
  labels[labels == 7] = 8.0
  labels[1] = 7.0  # a single-sample bucket: variance 0 (biased formula, as the reference)
  old_mean, old_var = loop.running_mean.numpy().copy(), loop.running_var.numpy().copy()
  window = np.exp(-np.arange(-2, 3) ** 2 / 8.0)
  window /= window.sum()
  padded = np.pad(old_mean, ((2, 2), (0, 0)), mode="reflect")
  smoothed = sum(window[j] * padded[j:j + 10] for j in range(5))
  for fds in (loop, fast):
    fds.update(torch.as_tensor(features), torch.as_tensor(labels))
    np.testing.assert_allclose(fds.smoothed_mean.numpy(), smoothed, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fds.mean.numpy(), old_mean)
    for b in range(10):
      rows = features[labels == b]
      if len(rows) == 0:
        np.testing.assert_allclose(fds.running_mean[b].numpy(), old_mean[b])
        continue
      var = rows.var(0, ddof=1) if len(rows) > 1 else np.zeros(6)
      np.testing.assert_allclose(fds.running_mean[b].numpy(), 0.1 * rows.mean(0) + 0.9 * old_mean[b], rtol=1e-4, atol=1e-5)
      np.testing.assert_allclose(fds.running_var[b].numpy(), 0.1 * var + 0.9 * old_var[b], rtol=1e-4, atol=1e-5)


def test_torch_balanced_mse_losses_match_numpy():
  torch = pytest.importorskip("torch")
  from scripts import benchmark_torch

  gen = np.random.default_rng(2)
  pred, target = gen.normal(40, 10, (16, 1)), gen.normal(40, 10, (16, 1))
  v = 9.0
  means, variances, weights = np.array([[20.0, 50.0]]), np.array([[30.0, 80.0]]), np.array([[0.3, 0.7]])
  centers, bucket_w = np.arange(0.5, 100)[None], np.full((1, 100), 0.01)
  logits = -0.5 * (pred - target.T) ** 2 / v
  bmc = np.mean(logsumexp(logits, axis=1) - np.diag(logits)) * 2 * v
  total = variances + v
  gai_bal = logsumexp(-0.5 * np.log(total) - 0.5 * (pred - means) ** 2 / total + np.log(weights), axis=1)
  gai = np.mean((pred - target)[:, 0] ** 2 / (2 * v) + 0.5 * np.log(v) + gai_bal) * 2 * v
  bni_bal = logsumexp(-(pred - centers) ** 2 / (2 * v) + np.log(bucket_w), axis=1)
  bni = np.mean((pred - target)[:, 0] ** 2 / (2 * v) + bni_bal) * 2 * v
  t = lambda a: torch.as_tensor(a, dtype=torch.float64)
  nv = t(v)
  assert float(benchmark_torch.bmc_loss(t(pred), t(target), nv)) == pytest.approx(bmc, rel=1e-10)
  assert float(benchmark_torch.gai_loss(t(pred), t(target), nv, t(means), t(variances), t(weights))) == pytest.approx(gai, rel=1e-10)
  assert float(benchmark_torch.bni_loss(t(pred), t(target), nv, t(centers), t(bucket_w))) == pytest.approx(bni, rel=1e-10)
