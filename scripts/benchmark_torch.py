"""PyTorch baselines of dirjax's training step (results: docs/benchmarks.md), written for this project.

The same step as `scripts/benchmark.py` (ResNet-50, 224², global batch 256, generated images
already on the device, Adam, one optimizer step per batch; sizes, labels, methods and the report
layout are shared with it) in three variants:

* `reference`: the DIR reference's recipe: fp32 with TF32 allowed (its default on Ampere+ at the
  time), NCHW, PyTorch's default (for-each) Adam, and FDS as in the reference: calibration as a
  Python loop over the unique labels of the batch (each with host syncs), the per-epoch
  statistics as a Python loop over the buckets present in the epoch.
* `tuned_eager`: channels-last, bf16 autocast, fused Adam; FDS calibration as one gather + fused
  affine map and the statistics with `index_add_` (no loop), as dirjax does.
* `tuned`: `tuned_eager` under `torch.compile` (forward + loss; the backward via AOTAutograd). If
  compilation fails (e.g. no C++ toolchain) the variant runs eager and the JSON records
  `compiled: false` and the error.

The ResNet is written here by hand (torchvision beside torch 2.13 does not import on our machines):
torchvision's layout (Bottleneck [3,4,6,3], stride on the 3×3 conv), He fan-out init, a linear
head on the average-pooled encoding, BatchNorm over the whole batch. Methods (our own code of the
papers' losses): `vanilla` (L1), `lds` and `fds` (L1 weighted by a per-bin SQINV table looked up
on device; `fds` adds FDS calibration in the step), `bmc`, `gai` (8-component GMM prior), `bni`
(100-bucket prior), the last three with a learnable σ in its own Adam group.

Deviation: the reference-style epoch pass collects the features on the device (the reference
copies every batch to host numpy and back), so it is an upper bound on the reference's speed.

  python -m scripts.benchmark_torch --json /tmp/bench/torch.json          # GPU, full size
  python -m scripts.benchmark_torch --small --json /tmp/torch_small.json  # CPU smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

# The shared sizes, labels and report code come from scripts/benchmark.py, which imports JAX: keep
# JAX off the GPU in this process (it would pre-allocate most of the GPU memory if it started there).
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from scripts import benchmark as bench  # noqa: E402

METHODS = bench.METHODS
VARIANTS = {
  "reference": {"dtype": "fp32", "channels_last": False, "fused_adam": False, "compile": False, "fds_loop": True},
  "tuned_eager": {"dtype": "bf16", "channels_last": True, "fused_adam": True, "compile": False, "fds_loop": False},
  "tuned": {"dtype": "bf16", "channels_last": True, "fused_adam": True, "compile": True, "fds_loop": False},
}
NUM_BUCKETS = bench.NUM_BUCKETS
WARMUP_STEPS = bench.WARMUP_STEPS
GMM_COMPONENTS = 8
LR, SIGMA_LR, INIT_SIGMA = 1e-3, 1e-2, 10.0  # as configs/age_common.py


# ------------------------------------------------------------------------------------------------
# Model.


def _conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Conv2d:
  return nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False)


class BasicBlock(nn.Module):
  expansion = 1

  def __init__(self, cin: int, planes: int, stride: int):
    super().__init__()
    self.body = nn.Sequential(_conv(cin, planes, 3, stride), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
                              _conv(planes, planes, 3, 1), nn.BatchNorm2d(planes))
    self.shortcut = _shortcut(cin, planes, stride)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return F.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
  expansion = 4

  def __init__(self, cin: int, planes: int, stride: int):
    super().__init__()
    self.body = nn.Sequential(
      _conv(cin, planes, 1, 1), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
      _conv(planes, planes, 3, stride), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
      _conv(planes, planes * 4, 1, 1), nn.BatchNorm2d(planes * 4))
    self.shortcut = _shortcut(cin, planes * 4, stride)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return F.relu(self.body(x) + self.shortcut(x))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
  if stride == 1 and cin == cout:
    return nn.Identity()
  return nn.Sequential(_conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))


ARCHITECTURES = {18: (BasicBlock, (2, 2, 2, 2)), 50: (Bottleneck, (3, 4, 6, 3))}


class ResNet(nn.Module):
  """ImageNet-stem ResNet-18/50 regressor: `forward(x, targets, fds) -> (pred [B,1], encoding)`.

  `fds(encoding, targets)` (optional) calibrates the encoding before the head, as the reference
  does in training mode.
  """

  def __init__(self, depth: int, in_channels: int):
    super().__init__()
    block, sizes = ARCHITECTURES[depth]
    layers: list[nn.Module] = [_conv(in_channels, 64, 7, 2), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                               nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for stage, (planes, size) in enumerate(zip((64, 128, 256, 512), sizes)):
      for i in range(size):
        layers.append(block(cin, planes, 2 if stage > 0 and i == 0 else 1))
        cin = planes * block.expansion
    self.encoder = nn.Sequential(*layers)
    self.feature_dim = cin
    self.head = nn.Linear(cin, 1)
    for m in self.modules():
      if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

  def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None,
              fds: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    encoding = self.encoder(x).float().mean(dim=(2, 3))
    features = encoding if fds is None else fds(encoding, targets)
    return self.head(features), encoding


# ------------------------------------------------------------------------------------------------
# FDS: the reference's loops and the vectorized form.


def _smooth_over_buckets(stats: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
  """[B, D] statistics cross-correlated over buckets with reflect padding (Eq. 4)."""
  half = window.numel() // 2
  x = F.pad(stats.T.unsqueeze(1), (half, half), mode="reflect")
  return F.conv1d(x, window.view(1, 1, -1)).squeeze(1).T


class TorchFDS:
  """FDS buffers + calibration (Eq. 5) + per-epoch statistics, integer age buckets 0..B−1.

  `loop=True` is the reference's structure (Python loops over labels / buckets, host syncs);
  `loop=False` gathers per-sample rows and uses `index_add_`, as dirjax does.
  """

  def __init__(self, feature_dim: int, device: torch.device, loop: bool, num_buckets: int = NUM_BUCKETS,
               momentum: float = 0.9, clip: tuple[float, float] = (0.1, 10.0)):
    shape = (num_buckets, feature_dim)
    self.loop, self.num_buckets, self.momentum, self.clip = loop, num_buckets, momentum, clip
    self.mean = torch.randn(shape, device=device)
    self.var = torch.rand(shape, device=device) + 0.5
    self.smoothed_mean, self.smoothed_var = self.mean.clone(), self.var.clone()
    self.running_mean, self.running_var = self.mean.clone(), self.var.clone()
    grid = torch.arange(5, dtype=torch.float32, device=device) - 2
    window = torch.exp(-grid ** 2 / (2 * 2.0 ** 2))
    self.window = window / window.sum()

  def __call__(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    features = features.float()
    if self.loop:
      return self._calibrate_loop(features, labels[:, 0])
    k = labels[:, 0].long().clamp(0, self.num_buckets - 1)
    scale = torch.sqrt(torch.clamp(self.smoothed_var / self.var, *self.clip))
    return (features - self.mean[k]) * scale[k] + self.smoothed_mean[k]

  def _calibrate_loop(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    out = features.clone()
    last = self.num_buckets - 1
    for label in torch.unique(labels).tolist():
      k = int(label)
      if k < 0 or k > last:
        continue
      rows = labels <= k if k == 0 else labels >= k if k == last else labels == k
      v1 = self.var[k]
      if float(v1.sum()) < 1e-10:
        continue
      scale = torch.sqrt(torch.clamp(self.smoothed_var[k] / v1, *self.clip))
      out[rows] = (out[rows] - self.mean[k]) * scale + self.smoothed_mean[k]
    return out

  def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
    """End of epoch: last-epoch statistics := running ones, smoothed; then the running EMA."""
    self.mean, self.var = self.running_mean.clone(), self.running_var.clone()
    self.smoothed_mean = _smooth_over_buckets(self.mean, self.window)
    self.smoothed_var = _smooth_over_buckets(self.var, self.window)
    f = self.momentum
    if self.loop:
      for label in torch.unique(labels).tolist():
        k = int(label)
        rows = features[labels == label]
        var = rows.var(0, unbiased=rows.shape[0] > 1)
        self.running_mean[k] = (1 - f) * rows.mean(0) + f * self.running_mean[k]
        self.running_var[k] = (1 - f) * var + f * self.running_var[k]
      return
    k = labels.long()
    count = torch.bincount(k, minlength=self.num_buckets).float()[:, None]
    mean = torch.zeros_like(self.running_mean).index_add_(0, k, features) / count.clamp(min=1)
    m2 = torch.zeros_like(self.running_var).index_add_(0, k, (features - mean[k]) ** 2)
    var = torch.where(count > 1, m2 / (count - 1).clamp(min=1), torch.zeros_like(m2))
    present = count > 0
    self.running_mean = torch.where(present, (1 - f) * mean + f * self.running_mean, self.running_mean)
    self.running_var = torch.where(present, (1 - f) * var + f * self.running_var, self.running_var)


# ------------------------------------------------------------------------------------------------
# Losses (Ren et al. CVPR 2022 Eqs. for BMC / GAI / BNI; noise_var = σ², scale 2σ² detached).


def bmc_loss(pred: torch.Tensor, target: torch.Tensor, noise_var: torch.Tensor) -> torch.Tensor:
  logits = -0.5 * (pred - target.T) ** 2 / noise_var
  labels = torch.arange(pred.shape[0], device=pred.device)
  return F.cross_entropy(logits, labels) * (2 * noise_var).detach()


def gai_loss(pred: torch.Tensor, target: torch.Tensor, noise_var: torch.Tensor, means: torch.Tensor,
             variances: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
  mse = (pred - target) ** 2 / (2 * noise_var) + 0.5 * torch.log(noise_var)
  total = variances + noise_var
  bal = torch.logsumexp(-0.5 * torch.log(total) - 0.5 * (pred - means) ** 2 / total + torch.log(weights), dim=1)
  return (mse[:, 0] + bal).mean() * (2 * noise_var).detach()


def bni_loss(pred: torch.Tensor, target: torch.Tensor, noise_var: torch.Tensor, centers: torch.Tensor,
             weights: torch.Tensor) -> torch.Tensor:
  mse = (pred - target) ** 2 / (2 * noise_var)
  bal = torch.logsumexp(-(pred - centers) ** 2 / (2 * noise_var) + torch.log(weights), dim=1)
  return (mse[:, 0] + bal).mean() * (2 * noise_var).detach()


def label_priors(labels: np.ndarray) -> dict[str, np.ndarray]:
  """Per-bin SQINV weights (mean 1), a GMM-like prior (equally spaced, equal weights) and the bucket
  prior; only their shapes matter for speed."""
  counts = np.bincount(labels.astype(np.int64), minlength=NUM_BUCKETS).astype(np.float64)
  sqinv = 1.0 / np.sqrt(np.clip(counts, 5, 1000))
  return {
    "weight_table": (sqinv * NUM_BUCKETS / sqinv.sum()).astype(np.float32),
    "gmm_means": np.linspace(10, 90, GMM_COMPONENTS, dtype=np.float32)[None],
    "gmm_vars": np.full((1, GMM_COMPONENTS), 100.0, np.float32),
    "gmm_weights": np.full((1, GMM_COMPONENTS), 1.0 / GMM_COMPONENTS, np.float32),
    "bucket_centers": (np.arange(NUM_BUCKETS, dtype=np.float32) + 0.5)[None],
    "bucket_weights": (np.maximum(counts, 1) / np.maximum(counts, 1).sum()).astype(np.float32)[None],
  }


# ------------------------------------------------------------------------------------------------
# One (method, variant) measurement.


def _sync(device: torch.device) -> None:
  if device.type == "cuda":
    torch.cuda.synchronize(device)


def _peak_bytes(device: torch.device) -> int | None:
  return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def _autocast(device: torch.device, dtype: str):
  return torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")


def _build(method: str, variant: dict, size: dict, device: torch.device, priors: dict):
  """(model, optimizer, loss_fn(x, y) -> scalar, fds or None)."""
  torch.manual_seed(0)
  model = ResNet(int(size["model"].removeprefix("resnet")), size["channels"]).to(device)
  if variant["channels_last"]:
    model = model.to(memory_format=torch.channels_last)
  model.train()
  groups = [{"params": list(model.parameters()), "lr": LR}]
  sigma = None
  if method in ("bmc", "gai", "bni"):
    sigma = nn.Parameter(torch.tensor(INIT_SIGMA, device=device))
    groups.append({"params": [sigma], "lr": SIGMA_LR})
  optimizer = torch.optim.Adam(groups, fused=variant["fused_adam"] or None)
  fds = TorchFDS(model.feature_dim, device, loop=variant["fds_loop"]) if method == "fds" else None
  p = {k: torch.as_tensor(v, device=device) for k, v in priors.items()}

  def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    pred, _ = model(x, y, fds)
    pred = pred.float()
    if method in ("lds", "fds"):
      w = p["weight_table"][y[:, 0].long()][:, None]
      return (w * (pred - y).abs()).mean()
    if method == "bmc":
      return bmc_loss(pred, y, sigma ** 2)
    if method == "gai":
      return gai_loss(pred, y, sigma ** 2, p["gmm_means"], p["gmm_vars"], p["gmm_weights"])
    if method == "bni":
      return bni_loss(pred, y, sigma ** 2, p["bucket_centers"], p["bucket_weights"])
    return (pred - y).abs().mean()

  return model, optimizer, loss_fn, fds


def _maybe_compile(fn: Callable, want: bool, record: dict) -> Callable:
  record["compiled"] = False
  if not want:
    return fn
  try:
    compiled = torch.compile(fn)
  except Exception as e:  # noqa: BLE001 (any backend failure means: run eager, say why)
    record["compile_error"] = f"{type(e).__name__}: {e}"[:500]
    return fn
  record["compiled"] = True
  return compiled


def _run_with_fallback(fn: Callable, eager: Callable, record: dict, *args) -> Any:
  """Calls `fn`; when it is a compiled function whose first call fails, records why and goes eager."""
  try:
    return fn(*args), fn
  except Exception as e:  # noqa: BLE001
    if not record["compiled"] or fn is eager:
      raise
    record["compiled"] = False
    record["compile_error"] = f"{type(e).__name__}: {e}"[:500]
    torch._dynamo.reset()
    return eager(*args), eager


def prepare_train_step(method: str, name: str, size: dict, device: torch.device,
                       batch: tuple[torch.Tensor, torch.Tensor], priors: dict):
  """One (method, variant) built and warmed up (the first steps are timed apart: they include
  torch.compile's compilation and cuDNN autotuning); returns its record, `run(n) -> seconds of n
  steps` and `finish()`, which adds the peak memory and the last loss (as `scripts/benchmark.py`)."""
  variant = VARIANTS[name]
  record = {"method": method, "variant": name, "dtype": variant["dtype"]}
  model, optimizer, loss_fn, _ = _build(method, variant, size, device, priors)
  x, y = batch
  if variant["channels_last"]:
    x = x.contiguous(memory_format=torch.channels_last)
  dtype = variant["dtype"]

  def forward_loss(x, y):
    with _autocast(device, dtype):
      return loss_fn(x, y)

  run = _maybe_compile(forward_loss, variant["compile"], record)

  def step(fn):
    optimizer.zero_grad(set_to_none=True)
    loss, fn = _run_with_fallback(fn, forward_loss, record, x, y)
    loss.backward()
    optimizer.step()
    return loss, fn

  if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats(device)
  start = time.perf_counter()
  for _ in range(WARMUP_STEPS):
    loss, run = step(run)
  _sync(device)
  record["compile_s"] = time.perf_counter() - start
  carry = {"fn": run, "loss": loss}

  def timed(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
      carry["loss"], carry["fn"] = step(carry["fn"])
    _sync(device)
    return time.perf_counter() - start

  def finish() -> dict:
    record.update(peak_bytes=_peak_bytes(device), last_loss=float(carry["loss"].detach()))
    return record

  return record, timed, finish


def measure_fds_epoch(name: str, size: dict, device: torch.device,
                      batch: tuple[torch.Tensor, torch.Tensor], priors: dict) -> dict:
  """The per-epoch FDS work of one variant: the feature pass (training-mode forward without
  gradients, FDS calibration on, as the reference) and the statistics update at IMDB-WIKI size
  (`epoch_samples` × `feature_dim` features, 100 buckets)."""
  variant = VARIANTS[name]
  model, _, _, fds = _build("fds", variant, size, device, priors)
  record = {"variant": name, "dtype": variant["dtype"], "samples": size["epoch_samples"],
            "feature_dim": model.feature_dim, "buckets": NUM_BUCKETS}
  x, y = batch
  if variant["channels_last"]:
    x = x.contiguous(memory_format=torch.channels_last)

  def features(x, y):
    with torch.no_grad(), _autocast(device, variant["dtype"]):
      return model(x, y, fds)[1]

  run = _maybe_compile(features, variant["compile"], record)
  for _ in range(WARMUP_STEPS):
    _, run = _run_with_fallback(run, features, record, x, y)
  _sync(device)
  collected = []
  start = time.perf_counter()
  for _ in range(size["steps"]):
    out, run = _run_with_fallback(run, features, record, x, y)
    collected.append(out)
  torch.cat(collected)
  _sync(device)
  rates = bench.rates(size["batch"], size["steps"], time.perf_counter() - start)
  record["feature_pass_images_per_s"] = rates["images_per_s"]
  record["feature_pass_epoch_s"] = size["epoch_samples"] / rates["images_per_s"]

  n, d = size["epoch_samples"], model.feature_dim
  epoch_features = torch.randn(n, d, device=device)
  epoch_labels = torch.as_tensor(bench.age_labels(n, seed=1), device=device)
  stats = TorchFDS(d, device, loop=variant["fds_loop"])
  stats.update(epoch_features, epoch_labels)  # warm-up (kernels, allocator)
  _sync(device)
  start = time.perf_counter()
  stats.update(epoch_features, epoch_labels)
  _sync(device)
  record["statistics_s"] = time.perf_counter() - start
  return record


# ------------------------------------------------------------------------------------------------
# Entry point.


def device_info(device: torch.device) -> dict:
  name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
  return {"platform": device.type, "device": name, "device_count": 1, "threads": torch.get_num_threads(),
          "versions": {"torch": torch.__version__, "python": platform.python_version()}}


def main(argv: Sequence[str] | None = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  bench.add_common_flags(parser, METHODS)
  parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list from {tuple(VARIANTS)}")
  args = parser.parse_args(argv)
  methods = bench.choices(args.methods, METHODS, "methods")
  variants = bench.choices(args.variants, VARIANTS, "variants")
  size = bench.sizes(args)
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  torch.set_num_threads(len(os.sched_getaffinity(0)))  # as many as XLA:CPU uses in scripts/benchmark.py
  torch.backends.cuda.matmul.allow_tf32 = True  # the reference's default (PyTorch < 1.12)
  torch.backends.cudnn.allow_tf32 = True
  torch.backends.cudnn.benchmark = True
  priors = label_priors(bench.age_labels(size["epoch_samples"], seed=1))
  gen = torch.Generator().manual_seed(0)
  shape = (size["batch"], size["channels"], size["image_size"], size["image_size"])
  batch = (torch.randn(shape, generator=gen).to(device),
           torch.as_tensor(bench.age_labels(size["batch"])[:, None], device=device))
  result = {"framework": "torch", **device_info(device),
            "settings": {**size, "small": args.small, "warmup_steps": WARMUP_STEPS, "rounds": args.rounds}, "train_step": [], "fds_epoch": []}
  prepared = {(method, name): prepare_train_step(method, name, size, device, batch, priors)
              for name in variants for method in methods}
  elapsed = bench.interleaved({key: run for key, (_, run, _) in prepared.items()}, size["steps"], args.rounds)
  for key, (record, _, finish) in prepared.items():
    record = {**finish(), **bench.round_rates(size["batch"], size["steps"], elapsed[key])}
    result["train_step"].append(record)
    print(f"  {key[0]:<9}{key[1]:<13}{record['images_per_s']:>10.1f} img/s", file=sys.stderr, flush=True)
  del prepared
  for name in variants:
    if "fds" in methods and not args.no_fds_epoch:
      result["fds_epoch"].append(measure_fds_epoch(name, size, device, batch, priors))
  bench.write_result(result, args.json)
  return result


if __name__ == "__main__":
  main()
