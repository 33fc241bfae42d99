"""DepthNet (Hu et al. 2019) and the BiLSTM (STS-B-DIR) encoders in the Regressor wrapper."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dirjax import fds as fds_lib
from dirjax.models import depth, text
from dirjax.models.regressor import Regressor


# ------------------------------------------------------------------------------------- BiLSTM


def _bilstm(fds=None, **kwargs):
  args = dict(vocab_size=20, embed_dim=6, hidden=5, num_layers=2, dropout=0.2)
  args.update(kwargs)
  rngs = nnx.Rngs(0)
  return Regressor(text.BiLSTMEncoder(**args, rngs=rngs), rngs=rngs, fds=fds)


@pytest.fixture(scope="module")
def bilstm():
  model = _bilstm(output_scale=5.0)
  model.eval()  # dropout off
  return model


def test_bilstm_shapes_and_frozen_embeddings(bilstm):
  model = bilstm
  x = jnp.array([[[3, 4, 5, 0], [6, 7, 0, 0]], [[8, 0, 0, 0], [9, 10, 11, 12]]], jnp.int32)
  pred, features, _ = model(x)
  assert pred.shape == (2, 1) and features.shape == (2, 4 * 2 * 5)
  assert "embedding" not in nnx.state(model.encoder, nnx.Param)  # not trained (reference --train_words 0)
  np.testing.assert_array_equal(model.encoder.embedding[...][0], 0.0)


def test_bilstm_padding_does_not_leak(bilstm):
  """Both LSTM directions and the max-pool must ignore pad positions: the same sentences padded to
  other lengths give the same prediction (the backward pass starts at the last real token)."""
  model = bilstm
  short = jnp.array([[[3, 4, 5], [6, 7, 8]]], jnp.int32)
  padded = jnp.pad(short, ((0, 0), (0, 0), (0, 4)))
  batch = jnp.concatenate([padded, jnp.array([[[9, 10, 11, 12, 13, 14, 15], [2, 0, 0, 0, 0, 0, 0]]])])
  p_short, f_short, _ = model(short)
  p_batch, f_batch, _ = model(batch)
  np.testing.assert_allclose(f_batch[0], f_short[0], atol=1e-5)
  np.testing.assert_allclose(p_batch[0], p_short[0], atol=1e-5)


def test_bilstm_pair_features_and_output_scale(bilstm):
  model = bilstm
  x = jnp.array([[[3, 4, 0], [6, 7, 8]]], jnp.int32)
  pred, features, _ = model(x)
  u = model.encoder.encode(x[:, 0])
  v = model.encoder.encode(x[:, 1])
  np.testing.assert_allclose(features, jnp.concatenate([u, v, jnp.abs(u - v), u * v], -1), atol=1e-6)
  head = features @ model.head.linear.kernel[...] + model.head.linear.bias[...]
  np.testing.assert_allclose(pred, 5.0 * head, rtol=1e-5, atol=1e-6)


def test_bilstm_embeddings_file(tmp_path):
  matrix = np.random.default_rng(0).standard_normal((7, 6)).astype(np.float32)
  np.save(tmp_path / "emb.npy", matrix)
  model = _bilstm(embeddings=str(tmp_path / "emb.npy"))
  np.testing.assert_array_equal(model.encoder.embedding[...], matrix)
  np.save(tmp_path / "bad.npy", matrix[:, :4])
  with pytest.raises(ValueError, match=r"\[V, 6\]"):
    _bilstm(embeddings=str(tmp_path / "bad.npy"))


def test_bilstm_bad_input():
  with pytest.raises(ValueError, match=r"\[B, 2, L\]"):
    _bilstm()(jnp.zeros((2, 5), jnp.int32))
  with pytest.raises(ValueError, match="dropout"):
    _bilstm(dropout=1.0)


def test_bilstm_fds_applied_before_head_in_training():
  fds = fds_lib.FDS(40, bucket_num=50, bucket_start=0, bucketing="floor10", start_smooth=0,
                    clip_min=0.5, clip_max=2.0)
  fds.running_mean_last_epoch[...] = jnp.full((50, 40), 0.3)
  fds.smoothed_mean_last_epoch[...] = jnp.full((50, 40), -0.2)
  fds.smoothed_var_last_epoch[...] = jnp.full((50, 40), 1.5)
  model = _bilstm(fds=fds, dropout=0.0)
  x = jnp.array([[[3, 4, 0], [6, 7, 8]], [[5, 0, 0], [9, 9, 9]]], jnp.int32)
  y = jnp.array([[1.4], [4.0]])
  pred, features, _ = model(x, targets=y, epoch=jnp.int32(1))
  calibrated = (features - 0.3) * jnp.sqrt(1.5) - 0.2  # Eq. 5 with v1 = 1, clip [0.5, 2]
  linear = model.head.linear
  np.testing.assert_allclose(pred, 5.0 * (calibrated @ linear.kernel[...] + linear.bias[...]), rtol=1e-4, atol=1e-5)
  model.eval()
  pred_eval, features_eval, _ = model(x)
  np.testing.assert_allclose(features_eval, features, atol=1e-5)  # features are raw
  np.testing.assert_allclose(pred_eval, 5.0 * (features @ linear.kernel[...] + linear.bias[...]), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------- DepthNet


def _materialize(build, seed=0):
  """Builds a module abstractly and fills it with host-side random values: eager construction
  compiles one initializer per parameter shape (minutes for a DepthNet on a loaded 2-core box)."""
  graphdef, state = nnx.split(nnx.eval_shape(build))
  rng = np.random.default_rng(seed)

  def fill(path, x):
    name = str(path[-2].key if isinstance(path[-1], jax.tree_util.GetAttrKey) else path[-1])
    if "var" in name:
      return jnp.ones(x.shape, x.dtype)
    return jnp.asarray((0.1 * rng.standard_normal(x.shape)).astype(x.dtype))

  return nnx.merge(graphdef, jax.tree_util.tree_map_with_path(fill, state))


@pytest.fixture(scope="module")
def small_depthnet():
  """One tiny DepthNet (width 4, one block per stage) with an FDS layer, shared by the tests."""
  def build():
    rngs = nnx.Rngs(0)
    encoder = depth.DepthNet(width=4, stage_sizes=(1, 1, 1, 1), rngs=rngs)
    fds = fds_lib.FDS(8, bucket_num=100, bucket_start=7, bucketing="floor10", start_smooth=0,
                      clip_min=0.2, clip_max=5.0)
    return Regressor(encoder, rngs=rngs, fds=fds)

  model = _materialize(build)
  for name in ("running_mean_last_epoch", "smoothed_mean_last_epoch"):
    getattr(model.fds, name)[...] = jnp.zeros((93, 8))
  for name in ("running_var_last_epoch", "smoothed_var_last_epoch"):
    getattr(model.fds, name)[...] = jnp.ones((93, 8))
  model.fds.smoothed_mean_last_epoch[...] = jnp.full((93, 8), 0.7)
  return model


def test_depthnet_shapes(small_depthnet):
  model = small_depthnet
  model.eval()
  pred, features, _ = nnx.jit(lambda m, x: m(x))(model, jnp.ones((2, 64, 96, 3)))
  assert pred.shape == (2, 32, 48, 1) and features.shape == (2, 32, 48, 8)
  assert model.encoder.feature_dim == 8
  with pytest.raises(ValueError, match="NHWC"):
    model(jnp.ones((2, 3, 64, 96)))


def test_depthnet_fds_on_pixel_features(small_depthnet):
  model = small_depthnet
  model.train()
  x = jnp.ones((2, 64, 96, 3))
  y = jnp.full((2, 32, 48, 1), 2.0)
  pred, features, _ = nnx.jit(lambda m, x, y: m(x, targets=y, epoch=jnp.int32(1)))(model, x, y)
  head = nnx.jit(lambda m, f: m.head(f))(model, features + 0.7)  # mean shift only (v1 = v2 = 1)
  np.testing.assert_allclose(pred, head, rtol=1e-4, atol=1e-5)


def test_depthnet_bad_options():
  with pytest.raises(ValueError, match="multiple of 4"):
    depth.DepthNet(width=6, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="stage_sizes"):
    depth.DepthNet(width=4, stage_sizes=(1, 1, 1), rngs=nnx.Rngs(0))


def _bilinear_half_pixel(x, out):
  """PyTorch `F.interpolate(mode='bilinear', align_corners=False)` upsampling, one axis at a time."""
  def axis(arr, n_out, ax):
    n_in = arr.shape[ax]
    src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(int), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    w = (src - lo).reshape([-1 if a == ax else 1 for a in range(arr.ndim)])
    return np.take(arr, lo, ax) * (1 - w) + np.take(arr, hi, ax) * w
  return axis(axis(x, out[0], 1), out[1], 2)


def test_up_projection_resize_is_align_corners_false():
  x = np.random.default_rng(0).standard_normal((1, 4, 5, 2)).astype(np.float32)
  got = jax.image.resize(x, (1, 9, 11, 2), "bilinear")  # what UpProjection uses
  np.testing.assert_allclose(got, _bilinear_half_pixel(x, (9, 11)), atol=1e-5)


def _torchvision_name(path):
  """Our encoder path → torchvision ResNet-50 name (written independently of the converter)."""
  parts, leaf = path.split("/")[:-1], path.split("/")[-1]
  bn_leaf = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
  name = "weight" if leaf == "kernel" else bn_leaf[leaf]
  if parts[0] == "stages":
    stage, block = int(parts[1]) + 1, parts[3]
    rest = parts[4:]
    if rest[0] == "downsample":
      rest = ["downsample", rest[2]]
    return ".".join([f"layer{stage}", block, *rest, name])
  return ".".join([*parts, name])


def test_convert_and_load_torchvision_weights(tmp_path, small_depthnet):
  encoder = small_depthnet.encoder.encoder  # overwritten below: keep this test last in the file
  flat = {"/".join(map(str, k)): v[...] for k, v in nnx.to_flat_state(nnx.state(encoder))}
  rng = np.random.default_rng(0)
  torch_sd = {"fc.weight": np.zeros((1000, 2048)), "bn1.num_batches_tracked": np.array(3)}
  for path, value in flat.items():
    shape = value.shape if value.ndim != 4 else (value.shape[3], value.shape[2], *value.shape[:2])  # OIHW
    torch_sd[_torchvision_name(path)] = rng.standard_normal(shape).astype(np.float32)
  converted = depth.convert_torchvision_resnet50(torch_sd)
  np.savez(tmp_path / "enc.npz", **converted)
  fresh = encoder
  depth.load_encoder_weights(fresh, str(tmp_path / "enc.npz"))
  for k, v in nnx.to_flat_state(nnx.state(fresh)):
    path = "/".join(map(str, k))
    source = torch_sd[_torchvision_name(path)]
    want = np.transpose(source, (2, 3, 1, 0)) if source.ndim == 4 else source
    np.testing.assert_array_equal(v[...], want)
  del converted["conv1/kernel"]
  np.savez(tmp_path / "partial.npz", **converted)
  with pytest.raises(ValueError, match="lacks 1 arrays"):
    depth.load_encoder_weights(fresh, str(tmp_path / "partial.npz"))
