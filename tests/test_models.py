"""Model registry, MLP and ResNet encoders in the Regressor wrapper: shapes, parameter counts,
initialisation, BN modes, FDS hook."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ml_collections import ConfigDict

from dirjax.models import get_model
from dirjax.models.mlp import MLP
from dirjax.models.regressor import Regressor
from dirjax.models.resnet import ResNet, ShardedBatchNorm


def n_params(module) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def wrapped(encoder_class, *args, seed=0, fds=None, **kwargs):
  """`Regressor(encoder_class(*args, **kwargs))`, the head drawn from the same `Rngs(seed)`."""
  rngs = nnx.Rngs(seed)
  return Regressor(encoder_class(*args, **kwargs, rngs=rngs), rngs=rngs, fds=fds)


def abstract(depth, **kwargs):
  return nnx.eval_shape(lambda: wrapped(ResNet, depth, **kwargs))


# All ResNet forwards use this input shape: eager ops compile once per shape, so sharing it keeps
# the file fast on CPU (32×32 with the ImageNet stem avoids XLA:CPU's slow 2×2 last stage).
IMAGES = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)


class RecordingFDS(nnx.Module):
  """Stand-in for dirjax.fds.FDS: doubles the features and counts calls."""

  def __init__(self):
    self.deterministic = False
    self.calls = nnx.Variable(jnp.zeros((), jnp.int32))

  def __call__(self, features, labels, epoch):
    self.calls[...] += 1
    return 2.0 * features + 0.0 * labels.mean() + 0.0 * epoch


# --- registry ----------------------------------------------------------------------------------

def test_get_model_builds_each_local_model_with_config_kwargs():
  rngs = nnx.Rngs(0)
  mlp = Regressor(get_model(ConfigDict(dict(name="mlp", in_features=5, hidden=(7,), out_dim=2)), rngs=rngs), rngs=rngs)
  pred, feats, *_ = mlp(jnp.ones((3, 5)))
  assert pred.shape == (3, 2) and feats.shape == (3, 7)
  r18 = nnx.eval_shape(lambda: get_model(ConfigDict(dict(name="resnet18", stem="cifar")), rngs=nnx.Rngs(0)))
  assert r18.make_head(rngs=nnx.Rngs(0)).kernel.shape == (512, 1) and r18.stem == "cifar"
  r50 = nnx.eval_shape(lambda: get_model(ConfigDict(dict(name="resnet50")), rngs=nnx.Rngs(0)))
  assert r50.feature_dim == 2048


def test_get_model_errors_name_the_problem():
  with pytest.raises(ValueError, match=r"unknown model 'vgg'.*'mlp'.*'resnet50'"):
    get_model(ConfigDict(dict(name="vgg")), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"unknown option\(s\) \['widht'\].*'hidden'"):
    get_model(ConfigDict(dict(name="mlp", in_features=3, widht=4)), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"unknown option\(s\) \['depth'\]"):
    get_model(ConfigDict(dict(name="resnet18", depth=50)), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"needs option\(s\) \['in_features'\]"):
    get_model(ConfigDict(dict(name="mlp")), rngs=nnx.Rngs(0))


# --- MLP ---------------------------------------------------------------------------------------

def test_mlp_without_hidden_layers_is_the_linear_model():
  model = wrapped(MLP, 4, hidden=(), out_dim=2, seed=1)
  x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
  pred, feats, *_ = model(jnp.asarray(x))
  w, b = np.asarray(model.head.kernel[...]), np.asarray(model.head.bias[...])
  np.testing.assert_allclose(pred, x @ w + b, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(feats, x)


def test_mlp_tutorial_fcnet_forward_matches_numpy():
  model = wrapped(MLP, 13)  # FCNet: 13 -> 256 -> 256 -> 256 -> 1
  assert n_params(model) == (13 * 256 + 256) + 2 * (256 * 256 + 256) + (256 + 1)
  x = np.random.default_rng(1).normal(size=(5, 13)).astype(np.float32)
  h = x
  for layer in model.encoder.layers:
    h = np.maximum(h @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...]), 0.0)
  pred, feats, *_ = model(jnp.asarray(x))
  np.testing.assert_allclose(feats, h, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(pred, h @ np.asarray(model.head.kernel[...]) + np.asarray(model.head.bias[...]),
                             rtol=1e-4, atol=1e-5)


def test_mlp_bad_input_errors():
  with pytest.raises(ValueError, match="activation"):
    MLP(3, activation="sigmoidd", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="dropout"):
    MLP(3, dropout=1.0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"\[B, in_features\]"):
    MLP(3, rngs=nnx.Rngs(0))(jnp.ones((3,)))


@pytest.mark.parametrize("fan_in", [13, 512])
def test_head_init_is_pytorch_default_uniform(fan_in):
  model = wrapped(MLP, fan_in, hidden=(), out_dim=64, seed=3)
  bound = 1.0 / math.sqrt(fan_in)
  for p in (np.asarray(model.head.kernel[...]), np.asarray(model.head.bias[...])):
    assert np.abs(p).max() <= bound
    assert np.abs(p).max() > 0.9 * bound
  w = np.asarray(model.head.kernel[...]).ravel()
  # U(-b, b): variance b^2 / 3 (n = 64·fan_in draws).
  np.testing.assert_allclose(w.var(), bound ** 2 / 3, rtol=5 * math.sqrt(0.8 / w.size))


# --- FDS hook (the Regressor puts FDS between every encoder and its head) -----------------------

def test_fds_hook_only_in_training_and_features_stay_raw():
  fds = RecordingFDS()
  model = wrapped(MLP, 3, hidden=(5,), fds=fds)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
  y = jnp.ones((4, 1))
  pred, feats, calibrated, _ = model(x, y, jnp.int32(2))
  assert int(fds.calls[...]) == 1
  np.testing.assert_array_equal(calibrated, 2.0 * feats)
  expected = 2.0 * feats @ model.head.kernel[...] + model.head.bias[...]
  np.testing.assert_allclose(pred, expected, rtol=1e-6)
  feats_no_fds = wrapped(MLP, 3, hidden=(5,))(x).features
  np.testing.assert_array_equal(feats, feats_no_fds)  # raw, not calibrated
  model.eval()
  assert fds.deterministic  # model.eval() reaches the attached FDS too
  pred_eval = model(x, y, jnp.int32(2)).preds
  assert int(fds.calls[...]) == 1
  np.testing.assert_allclose(pred_eval, feats @ model.head.kernel[...] + model.head.bias[...], rtol=1e-6)
  model.train()
  model(x, y, jnp.int32(2))
  assert int(fds.calls[...]) == 2


def test_fds_model_in_training_needs_targets_and_epoch():
  model = wrapped(MLP, 3, hidden=(), fds=RecordingFDS())
  with pytest.raises(ValueError, match="targets.*epoch"):
    model(jnp.ones((2, 3)))


def test_resnet_fds_hook_and_shapes():
  model = wrapped(ResNet, 18, fds=RecordingFDS())
  pred, feats, *_ = model(jnp.asarray(IMAGES), jnp.ones((2, 1)), jnp.int32(0))
  assert pred.shape == (2, 1) and feats.shape == (2, 512) and pred.dtype == jnp.float32
  assert int(model.fds.calls[...]) == 1
  np.testing.assert_allclose(pred, 2.0 * feats @ model.head.kernel[...] + model.head.bias[...], rtol=1e-5)


# --- ResNet ------------------------------------------------------------------------------------

def torchvision_resnet_backbone_params(depth):
  """Hand count of conv + BN(γ, β) parameters of torchvision's ResNet, without the fc layer."""
  conv = lambda k, cin, cout: k * k * cin * cout
  bn = lambda c: 2 * c
  total = conv(7, 3, 64) + bn(64)
  cin = 64
  blocks = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}[depth]
  for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
    for i in range(n):
      stride = 2 if stage > 0 and i == 0 else 1
      if depth == 18:
        cout = planes
        total += conv(3, cin, planes) + bn(planes) + conv(3, planes, planes) + bn(planes)
      else:
        cout = 4 * planes
        total += (conv(1, cin, planes) + bn(planes) + conv(3, planes, planes) + bn(planes)
                  + conv(1, planes, cout) + bn(cout))
      if stride != 1 or cin != cout:
        total += conv(1, cin, cout) + bn(cout)
      cin = cout
  return total, cin


@pytest.mark.parametrize("depth,torchvision_total", [(18, 11_689_512), (50, 25_557_032)])
def test_resnet_parameter_counts(depth, torchvision_total):
  backbone, feat = torchvision_resnet_backbone_params(depth)
  # torchvision's published totals include fc = Linear(feat, 1000).
  assert backbone == torchvision_total - (feat * 1000 + 1000)
  model = abstract(depth, out_dim=3)
  assert n_params(model) == backbone + feat * 3 + 3
  assert model.head.kernel.shape == (feat, 3)


def test_resnet50_structure_stride_on_3x3_and_projection_shortcuts():
  model = abstract(50).encoder
  first_of_stage = [model.blocks[i] for i in (0, 3, 7, 13)]
  for i, block in enumerate(first_of_stage):
    stride = 1 if i == 0 else 2
    assert block.conv1.strides in (1, (1, 1)) and block.conv1.kernel_size == (1, 1)
    assert block.conv2.strides in (stride, (stride, stride)) and block.conv2.kernel_size == (3, 3)
    down_conv, down_bn = block.downsample.layers
    assert down_conv.kernel_size == (1, 1) and down_conv.strides in (stride, (stride, stride))
    assert isinstance(down_bn, nnx.BatchNorm)
  assert model.blocks[1].downsample is None


def test_resnet_init_he_fan_out_normal_and_bn_identity():
  model = ResNet(18, rngs=nnx.Rngs(0))
  head = model.make_head(rngs=nnx.Rngs(0))
  kernel = np.asarray(model.blocks[5].conv2.kernel[...])  # 3x3, 256 -> 256
  assert kernel.shape == (3, 3, 256, 256)
  std = math.sqrt(2.0 / (3 * 3 * 256))
  n = kernel.size
  assert abs(kernel.mean()) < 5 * std / math.sqrt(n)
  np.testing.assert_allclose(kernel.std(), std, rtol=5 * math.sqrt(0.5 / n))
  # Untruncated normal: P(|z| > 2) = 4.55 %, a truncated normal at 2σ would give 0.
  tail = np.mean(np.abs(kernel) > 2 * std)
  assert abs(tail - 0.0455) < 5 * math.sqrt(0.0455 * 0.9545 / n)
  stem = np.asarray(model.conv1.kernel[...])  # 7x7, 3 -> 64: fan_out = 49·64
  np.testing.assert_allclose(stem.std(), math.sqrt(2.0 / (49 * 64)), rtol=0.05)
  bn = model.blocks[0].bn1
  np.testing.assert_array_equal(bn.scale[...], 1.0)
  np.testing.assert_array_equal(bn.bias[...], 0.0)
  assert bn.momentum == 0.9 and bn.epsilon == 1e-5
  bound = 1 / math.sqrt(512)
  assert np.abs(np.asarray(head.kernel[...])).max() <= bound


def test_resnet_bn_running_stats_follow_pytorch_momentum_and_eval_uses_them():
  model = ResNet(18, rngs=nnx.Rngs(0))
  x = jnp.asarray(IMAGES)
  conv_out = np.asarray(model.conv1(x))
  model(x)
  # PyTorch BN momentum 0.1: running = 0.9 · running + 0.1 · batch mean (running starts at 0).
  np.testing.assert_allclose(model.bn1.mean[...], 0.1 * conv_out.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
  # Training mode: a sample's output depends on its batch; eval mode: it does not.
  pred_batch = model(x)
  pred_alone = model(x[:1])
  assert not np.allclose(pred_batch[0], pred_alone[0], rtol=1e-3)
  model.eval()
  stats = jax.tree.map(np.asarray, nnx.state(model, nnx.BatchStat))
  pred_batch = model(x)
  pred_alone = model(x[:1])
  np.testing.assert_allclose(pred_batch[0], pred_alone[0], rtol=1e-4, atol=1e-5)
  jax.tree.map(np.testing.assert_array_equal, stats, jax.tree.map(np.asarray, nnx.state(model, nnx.BatchStat)))


def test_resnet_cifar_stem_and_bfloat16_compute():
  model = wrapped(ResNet, 18, stem="cifar", dtype="bfloat16")
  assert model.encoder.conv1.kernel_size == (3, 3) and model.encoder.conv1.strides in (1, (1, 1))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
  pred, feats, *_ = model(jnp.ones((2, 8, 8, 3)))
  assert pred.shape == (2, 1) and feats.shape == (2, 512)
  assert pred.dtype == jnp.float32 and feats.dtype == jnp.float32


def test_sharded_batch_norm_normalises_each_group_like_its_own_batch():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 3, 3, 4)) * 3 + 1, jnp.float32)
  sharded = ShardedBatchNorm(4, groups=2, momentum=0.9, epsilon=1e-5, rngs=nnx.Rngs(0))
  y = np.asarray(sharded(x))
  for g in range(2):
    part = np.asarray(x[4 * g:4 * (g + 1)])
    expected = (part - part.mean((0, 1, 2))) / np.sqrt(part.var((0, 1, 2)) + 1e-5)
    np.testing.assert_allclose(y[4 * g:4 * (g + 1)], expected, rtol=1e-4, atol=1e-5)
  # Running averages from the first shard only (DataParallel keeps GPU 0's buffers).
  first = np.asarray(x[:4])
  np.testing.assert_allclose(sharded.mean[...], 0.1 * first.mean((0, 1, 2)), rtol=1e-5)
  np.testing.assert_allclose(sharded.var[...], 0.9 + 0.1 * first.var((0, 1, 2)), rtol=1e-5)
  with pytest.raises(ValueError, match="not divisible by bn_groups=3"):
    ShardedBatchNorm(4, groups=3, rngs=nnx.Rngs(0))(x)


def test_resnet_bad_options_and_inputs():
  with pytest.raises(ValueError, match="depth"):
    ResNet(34, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="stem"):
    ResNet(18, stem="tiny", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="bn_groups"):
    ResNet(18, bn_groups=0, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="NHWC"):
    abstract(18)(jnp.ones((2, 32, 32)))
