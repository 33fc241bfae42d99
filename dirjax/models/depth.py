"""NYUD2-DIR depth network: Hu et al. (WACV 2019) "Revisiting single image depth estimation".

Reference (`nyud2-dir/models/{net,modules}.py`), NHWC here:

* E: ResNet-50 (blocks `dirjax.models.resnet.Bottleneck`), outputs of the four stages
  (256/512/1024/2048 channels; 57×76 ... 8×10 for a 228×304 input).
* UP(c_in → c_out, size): bilinear upsample (align_corners=False, = `jax.image.resize`) →
  [conv5×5 → BN → ReLU → conv3×3 → BN] + [conv5×5 → BN] → ReLU. Bias-free convs.
* D: conv1×1 2048→1024 → BN → ReLU → UP→512 (stage-3 size) → UP→256 (stage 2) → UP→128 (stage 1)
  → UP→64 (2 × stage-1 size = 114×152).
* MFF: UP(stage k → 16, 114×152) for k = 1..4, concat (64) → conv5×5 → BN → ReLU.
* R: concat(D, MFF) (128) → `regressor` = [conv5×5 → BN → ReLU] × 2 = the 128-d per-pixel
  `features` (FDS features); `make_head` = conv5×5 128→1 with bias, after FDS in the `Regressor`.

`width` scales every channel count (64 = the paper; 8 for tests); `stage_sizes` the blocks per
stage. The reference RRT retrains the whole R: `train_only = "regressor|head"`.

Deviations: the encoder is trained from scratch unless `encoder_weights` names a converted
ImageNet checkpoint (`.npz`, see `load_encoder_weights`; torchvision weights cannot be downloaded
here, and the paper's numbers need them). Decoder convs use flax's default init (PyTorch:
kaiming-uniform(a=√5)); BN running variance as in `dirjax.models.resnet`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dirjax.models.base import Encoder
from dirjax.models.resnet import BN_EPSILON, BN_MOMENTUM, Bottleneck, conv_init


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, *, rngs: nnx.Rngs, init=None,
          use_bias: bool = False) -> nnx.Conv:
  pad = kernel // 2
  kwargs = {} if init is None else {"kernel_init": init}
  return nnx.Conv(cin, cout, (kernel, kernel), strides=stride, padding=((pad, pad), (pad, pad)),
                  use_bias=use_bias, rngs=rngs, **kwargs)


_norm = functools.partial(nnx.BatchNorm, momentum=BN_MOMENTUM, epsilon=BN_EPSILON)


class ResNet50Encoder(nnx.Module):
  """ResNet-50 stem + 4 stages (no pooling / head); returns the 4 stage outputs."""

  def __init__(self, width: int = 64, stage_sizes: Sequence[int] = (3, 4, 6, 3), *, rngs: nnx.Rngs):
    conv = functools.partial(_conv, init=conv_init)
    self.conv1 = conv(3, width, 7, 2, rngs=rngs)
    self.bn1 = _norm(width, rngs=rngs)
    stages, in_planes = [], width
    for stage, size in enumerate(stage_sizes):
      planes = width * 2 ** stage
      blocks = []
      for i in range(size):
        blocks.append(Bottleneck(in_planes, planes, 2 if stage and not i else 1, conv=conv, norm=_norm, rngs=rngs))
        in_planes = planes * Bottleneck.expansion
      stages.append(nnx.Sequential(*blocks))
    self.stages = nnx.List(stages)

  def __call__(self, x: jax.Array) -> list[jax.Array]:
    y = nnx.relu(self.bn1(self.conv1(x)))
    y = nnx.max_pool(y, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    outs = []
    for stage in self.stages:
      y = stage(y)
      outs.append(y)
    return outs


class UpProjection(nnx.Module):
  """Hu et al.'s up-projection block UP(c_in → c_out, size)."""

  def __init__(self, cin: int, cout: int, *, rngs: nnx.Rngs):
    self.conv1 = _conv(cin, cout, 5, rngs=rngs)
    self.bn1 = _norm(cout, rngs=rngs)
    self.conv1_2 = _conv(cout, cout, 3, rngs=rngs)
    self.bn1_2 = _norm(cout, rngs=rngs)
    self.conv2 = _conv(cin, cout, 5, rngs=rngs)
    self.bn2 = _norm(cout, rngs=rngs)

  def __call__(self, x: jax.Array, size: tuple[int, int]) -> jax.Array:
    x = jax.image.resize(x, (x.shape[0], *size, x.shape[-1]), "bilinear")
    branch1 = self.bn1_2(self.conv1_2(nnx.relu(self.bn1(self.conv1(x)))))
    return nnx.relu(branch1 + self.bn2(self.conv2(x)))


class DepthNet(Encoder):
  """`encoder(images [B,H,W,3]) -> features [B, H/2, W/2, 2·width]`; the head gives depth [B, H/2, W/2, 1]."""

  def __init__(self, width: int = 64, stage_sizes: Sequence[int] = (3, 4, 6, 3),
               encoder_weights: str | None = None, *, rngs: nnx.Rngs):
    if width < 4 or width % 4:
      raise ValueError(f"width must be a positive multiple of 4, got {width}")
    if len(stage_sizes) != 4 or min(stage_sizes) < 1:
      raise ValueError(f"stage_sizes must be 4 positive ints, got {stage_sizes}")
    w = width
    self.encoder = ResNet50Encoder(w, stage_sizes, rngs=rngs)
    if encoder_weights:
      load_encoder_weights(self.encoder, encoder_weights)
    block_channels = [w * 4 * 2 ** k for k in range(4)]  # 256, 512, 1024, 2048 for w = 64
    self.decoder_conv = _conv(block_channels[3], 16 * w, 1, rngs=rngs)
    self.decoder_bn = _norm(16 * w, rngs=rngs)
    self.decoder_up = nnx.List([UpProjection(c, c // 2, rngs=rngs) for c in (16 * w, 8 * w, 4 * w, 2 * w)])
    self.mff_up = nnx.List([UpProjection(c, w // 4, rngs=rngs) for c in block_channels])
    self.mff_conv = _conv(w, w, 5, rngs=rngs)
    self.mff_bn = _norm(w, rngs=rngs)
    self.regressor = nnx.Sequential(
      _conv(2 * w, 2 * w, 5, rngs=rngs), _norm(2 * w, rngs=rngs), nnx.relu,
      _conv(2 * w, 2 * w, 5, rngs=rngs), _norm(2 * w, rngs=rngs), nnx.relu)
    self.feature_dim = 2 * w

  def make_head(self, *, rngs: nnx.Rngs) -> nnx.Conv:
    """R's last layer: a 5×5 conv with bias per pixel, 2·width → 1."""
    return _conv(self.feature_dim, 1, 5, rngs=rngs, use_bias=True)

  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"DepthNet expects NHWC RGB images [B, H, W, 3], got shape {x.shape}")
    blocks = self.encoder(x)
    sizes = [b.shape[1:3] for b in blocks]
    out_size = (2 * sizes[0][0], 2 * sizes[0][1])
    d = nnx.relu(self.decoder_bn(self.decoder_conv(blocks[3])))
    for up, size in zip(self.decoder_up, (sizes[2], sizes[1], sizes[0], out_size)):
      d = up(d, size)
    mff = jnp.concatenate([up(b, out_size) for up, b in zip(self.mff_up, blocks)], axis=-1)
    mff = nnx.relu(self.mff_bn(self.mff_conv(mff)))
    return self.regressor(jnp.concatenate([d, mff], axis=-1))


# torchvision ResNet-50 parameter names → our encoder paths (BN: weight→scale, running_*→mean/var).
_BN_NAMES = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}


def convert_torchvision_resnet50(state_dict: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Renames a torchvision ResNet-50 `state_dict` (as numpy arrays, e.g. `{k: v.numpy()}`) to the
  `ResNet50Encoder` state paths ('/'-joined), conv kernels OIHW → HWIO; `fc.*` is dropped."""
  out = {}
  for name, value in state_dict.items():
    parts = name.split(".")
    if parts[0] == "fc" or parts[-1] == "num_batches_tracked":
      continue
    if parts[0].startswith("layer"):
      path = ["stages", str(int(parts[0][5:]) - 1), "layers", parts[1]]
      rest = parts[2:]
      if rest[0] == "downsample":
        rest = ["downsample", "layers", *rest[1:]]
      path += rest[:-1]
    else:
      path = parts[:-1]
    leaf = parts[-1]
    is_conv = value.ndim == 4
    key = "kernel" if is_conv else _BN_NAMES[leaf]
    out["/".join([*path, key])] = np.transpose(value, (2, 3, 1, 0)) if is_conv else value
  return out


def load_encoder_weights(encoder: ResNet50Encoder, path: str) -> None:
  """Loads an `.npz` of encoder arrays keyed by '/'-joined state paths (`convert_torchvision_resnet50`).

  Every parameter and BN statistic of the encoder must be present with the right shape.
  """
  state = nnx.state(encoder)
  flat = {"/".join(str(p) for p in k): v for k, v in nnx.to_flat_state(state)}
  with np.load(path) as arrays:
    missing = sorted(set(flat) - set(arrays.files))
    if missing:
      raise ValueError(f"encoder checkpoint {path} lacks {len(missing)} arrays, e.g. {missing[:3]}")
    for key, var in flat.items():
      value = arrays[key]
      if value.shape != var[...].shape:
        raise ValueError(f"encoder checkpoint {path}: {key} has shape {value.shape}, expected {var[...].shape}")
      var[...] = jnp.asarray(value, var[...].dtype)
