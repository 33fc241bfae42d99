"""ResNet-18 / ResNet-50 encoders trained from scratch, as the DIR reference's ``resnet.py``.

Reference (``imdb-wiki-dir/resnet.py``): torchvision-style ResNet (BasicBlock [2,2,2,2] for 18,
Bottleneck [3,4,6,3] with the stride on the 3×3 conv and a 1×1 conv + BN downsample for 50), every
conv ~ N(0, sqrt(2 / (k·k·out_channels))) (He, fan-out), BN γ=1 β=0, global average pool to the
512/2048-d encoding, and a linear head with PyTorch's default init. Inputs are NHWC.

Deviations: flax's BatchNorm updates the running variance with the biased batch variance (PyTorch
uses the unbiased one; the factor n/(n-1) is ≈1 for n = B·H·W); the reference's unused dropout
before the head is omitted. ``stem="cifar"`` (3×3/1 conv, no max-pool) is an addition for small
images. ``bn_groups`` emulates ``nn.DataParallel``'s per-GPU BatchNorm (docs/deviations.md row 22).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from dirjax.models.base import Encoder

# PyTorch BatchNorm2d(momentum=0.1) keeps 0.9 of the old running value, eps 1e-5.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
conv_init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


class ShardedBatchNorm(nnx.BatchNorm):
  """BatchNorm whose training statistics are computed per group of ``groups`` consecutive batch slices.

  Emulates ``nn.DataParallel`` (docs/deviations.md row 22): each GPU normalises its own sub-batch, and the running
  averages come from GPU 0's sub-batch only. Evaluation uses the running averages as usual.
  """

  def __init__(self, num_features: int, *, groups: int, **kwargs: Any):
    super().__init__(num_features, **kwargs)
    self.groups = groups

  def __call__(self, x: jax.Array) -> jax.Array:
    if self.use_running_average:
      return super().__call__(x)
    if x.shape[0] % self.groups:
      raise ValueError(f"batch size {x.shape[0]} is not divisible by bn_groups={self.groups}")
    grouped = x.reshape(self.groups, -1, *x.shape[1:]).astype(jnp.float32)
    axes = tuple(range(1, grouped.ndim - 1))
    mean = grouped.mean(axes, keepdims=True)
    var = grouped.var(axes, keepdims=True)
    m = self.momentum
    self.mean[...] = jax.lax.stop_gradient(m * self.mean[...] + (1 - m) * mean[0].reshape(-1))
    self.var[...] = jax.lax.stop_gradient(m * self.var[...] + (1 - m) * var[0].reshape(-1))
    y = (grouped - mean) * jax.lax.rsqrt(var + self.epsilon) * self.scale[...] + self.bias[...]
    return y.reshape(x.shape).astype(self.dtype or x.dtype)


class BasicBlock(nnx.Module):
  """Two 3×3 convs; ``out = relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``."""
  expansion = 1

  def __init__(self, in_planes: int, planes: int, stride: int, *, conv: Callable, norm: Callable, rngs: nnx.Rngs):
    self.conv1 = conv(in_planes, planes, 3, stride, rngs=rngs)
    self.bn1 = norm(planes, rngs=rngs)
    self.conv2 = conv(planes, planes, 3, 1, rngs=rngs)
    self.bn2 = norm(planes, rngs=rngs)
    self.downsample = _downsample(in_planes, planes, stride, conv=conv, norm=norm, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = nnx.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    shortcut = x if self.downsample is None else self.downsample(x)
    return nnx.relu(y + shortcut)


class Bottleneck(nnx.Module):
  """1×1 reduce, 3×3 (carrying the stride), 1×1 expand ×4, plus the shortcut."""
  expansion = 4

  def __init__(self, in_planes: int, planes: int, stride: int, *, conv: Callable, norm: Callable, rngs: nnx.Rngs):
    self.conv1 = conv(in_planes, planes, 1, 1, rngs=rngs)
    self.bn1 = norm(planes, rngs=rngs)
    self.conv2 = conv(planes, planes, 3, stride, rngs=rngs)
    self.bn2 = norm(planes, rngs=rngs)
    self.conv3 = conv(planes, planes * 4, 1, 1, rngs=rngs)
    self.bn3 = norm(planes * 4, rngs=rngs)
    self.downsample = _downsample(in_planes, planes * 4, stride, conv=conv, norm=norm, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = nnx.relu(self.bn1(self.conv1(x)))
    y = nnx.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    shortcut = x if self.downsample is None else self.downsample(x)
    return nnx.relu(y + shortcut)


def _downsample(in_planes: int, out_planes: int, stride: int, *, conv: Callable, norm: Callable, rngs: nnx.Rngs):
  if stride == 1 and in_planes == out_planes:
    return None
  return nnx.Sequential(conv(in_planes, out_planes, 1, stride, rngs=rngs), norm(out_planes, rngs=rngs))


# depth -> (block, blocks per stage)
ARCHITECTURES = {18: (BasicBlock, (2, 2, 2, 2)), 50: (Bottleneck, (3, 4, 6, 3))}


class ResNet(Encoder):
  """ResNet-18/50 backbone: ``encoder(x [B,H,W,C]) -> encoding [B, feature_dim]`` (float32); the
  default linear head maps it to ``out_dim``.

  The encoding is 512-d (ResNet-18) or 2048-d (ResNet-50, the IMDB-WIKI/AgeDB-DIR backbone).
  """

  def __init__(
      self,
      depth: int,
      *,
      in_channels: int = 3,
      out_dim: int = 1,
      stem: str = "imagenet",
      dtype: Any = None,
      bn_groups: int | None = None,
      width: int = 64,
      stage_sizes: tuple[int, ...] | None = None,
      rngs: nnx.Rngs,
  ):
    if depth not in ARCHITECTURES:
      raise ValueError(f"ResNet depth must be one of {sorted(ARCHITECTURES)}, got {depth}")
    block, default_stages = ARCHITECTURES[depth]
    stage_sizes = tuple(default_stages if stage_sizes is None else stage_sizes)
    if len(stage_sizes) != 4 or min(stage_sizes) < 1 or width < 1:
      raise ValueError(f"need width >= 1 and 4 stage sizes >= 1, got width={width}, stage_sizes={stage_sizes}")
    if stem not in ("imagenet", "cifar"):
      raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
    if bn_groups is not None and bn_groups < 1:
      raise ValueError(f"bn_groups must be a positive int or None, got {bn_groups}")
    dtype = jnp.dtype(dtype) if dtype is not None else None

    def conv(cin: int, cout: int, kernel: int, stride: int, *, rngs: nnx.Rngs) -> nnx.Conv:
      pad = kernel // 2
      return nnx.Conv(
        cin, cout, (kernel, kernel), strides=stride, padding=((pad, pad), (pad, pad)),
        use_bias=False, kernel_init=conv_init, dtype=dtype, rngs=rngs)

    norm_kwargs = dict(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype)
    if bn_groups is None:
      norm = functools.partial(nnx.BatchNorm, **norm_kwargs)
    else:
      norm = functools.partial(ShardedBatchNorm, groups=bn_groups, **norm_kwargs)

    self.stem = stem
    self.dtype = dtype
    if stem == "imagenet":
      self.conv1 = conv(in_channels, width, 7, 2, rngs=rngs)
    else:
      self.conv1 = conv(in_channels, width, 3, 1, rngs=rngs)
    self.bn1 = norm(width, rngs=rngs)
    blocks = []
    in_planes = width
    for stage, (planes, size) in enumerate(zip((width, 2 * width, 4 * width, 8 * width), stage_sizes)):
      for i in range(size):
        stride = 2 if stage > 0 and i == 0 else 1
        blocks.append(block(in_planes, planes, stride, conv=conv, norm=norm, rngs=rngs))
        in_planes = planes * block.expansion
    self.blocks = nnx.List(blocks)
    self.feature_dim, self.out_dim = in_planes, out_dim

  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(f"ResNet expects NHWC images [B, H, W, C], got shape {x.shape}")
    if self.dtype is not None:
      x = x.astype(self.dtype)
    y = nnx.relu(self.bn1(self.conv1(x)))
    if self.stem == "imagenet":
      y = nnx.max_pool(y, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for block in self.blocks:
      y = block(y)
    # Global average pool (AvgPool2d(7) on the reference's 7×7 map); features (and head) in float32.
    return y.astype(jnp.float32).mean(axis=(1, 2))
