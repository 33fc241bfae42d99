"""DepthNet (Hu et al. 2019) and the BiLSTM (STS-B-DIR) encoders in the Regressor wrapper."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dirjax import fds as fds_lib
from dirjax.models import depth, minilm, text
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
  pred, features, *_ = model(x)
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
  p_short, f_short, *_ = model(short)
  p_batch, f_batch, *_ = model(batch)
  np.testing.assert_allclose(f_batch[0], f_short[0], atol=1e-5)
  np.testing.assert_allclose(p_batch[0], p_short[0], atol=1e-5)


def test_bilstm_pair_features_and_output_scale(bilstm):
  model = bilstm
  x = jnp.array([[[3, 4, 0], [6, 7, 8]]], jnp.int32)
  pred, features, *_ = model(x)
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
  pred, features, *_ = model(x, targets=y, epoch=jnp.int32(1))
  calibrated = (features - 0.3) * jnp.sqrt(1.5) - 0.2  # Eq. 5 with v1 = 1, clip [0.5, 2]
  linear = model.head.linear
  np.testing.assert_allclose(pred, 5.0 * (calibrated @ linear.kernel[...] + linear.bias[...]), rtol=1e-4, atol=1e-5)
  model.eval()
  pred_eval, features_eval, *_ = model(x)
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
  pred, features, *_ = nnx.jit(lambda m, x: m(x))(model, jnp.ones((2, 64, 96, 3)))
  assert pred.shape == (2, 32, 48, 1) and features.shape == (2, 32, 48, 8)
  assert model.encoder.feature_dim == 8
  with pytest.raises(ValueError, match="NHWC"):
    model(jnp.ones((2, 3, 64, 96)))


def test_depthnet_fds_on_pixel_features(small_depthnet):
  model = small_depthnet
  model.train()
  x = jnp.ones((2, 64, 96, 3))
  y = jnp.full((2, 32, 48, 1), 2.0)
  pred, features, *_ = nnx.jit(lambda m, x, y: m(x, targets=y, epoch=jnp.int32(1)))(model, x, y)
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


def _conv_same(x, kernel):
  """Stride-1 zero-padded cross-correlation, NHWC input, HWIO kernel (PyTorch Conv2d, padding k // 2)."""
  k = kernel.shape[0]
  padded = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
  windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))  # [B, H, W, C, k, k]
  return np.einsum("bhwcij,ijco->bhwo", windows, kernel)


def _batch_norm_eval(x, bn):
  return (x - bn["mean"]) / np.sqrt(bn["var"] + 1e-5) * bn["scale"] + bn["bias"]


def test_up_projection_block_matches_numpy():
  """UP(3 → 4, 7×9) on random weights and running statistics (eval mode), re-derived in numpy:
  bilinear upsampling (align_corners=False) → relu(BN(conv3(relu(BN(conv5(x))))) + BN(conv5'(x)))."""
  block = depth.UpProjection(3, 4, rngs=nnx.Rngs(0))
  block.eval()
  rng = np.random.default_rng(0)
  weights = {}
  for name, cin, k in (("conv1", 3, 5), ("conv1_2", 4, 3), ("conv2", 3, 5)):
    weights[name] = rng.normal(0, 0.3, (k, k, cin, 4)).astype(np.float32)
    getattr(block, name).kernel[...] = jnp.asarray(weights[name])
  for name in ("bn1", "bn1_2", "bn2"):
    weights[name] = {"scale": rng.uniform(0.5, 1.5, 4), "bias": rng.normal(0, 0.5, 4),
                     "mean": rng.normal(0, 0.5, 4), "var": rng.uniform(0.5, 2.0, 4)}
    for field, value in weights[name].items():
      getattr(getattr(block, name), field)[...] = jnp.asarray(value, jnp.float32)
  x = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)

  up = _bilinear_half_pixel(x.astype(np.float64), (7, 9))
  branch1 = np.maximum(_batch_norm_eval(_conv_same(up, weights["conv1"]), weights["bn1"]), 0)
  branch1 = _batch_norm_eval(_conv_same(branch1, weights["conv1_2"]), weights["bn1_2"])
  branch2 = _batch_norm_eval(_conv_same(up, weights["conv2"]), weights["bn2"])
  np.testing.assert_allclose(block(jnp.asarray(x), (7, 9)), np.maximum(branch1 + branch2, 0), rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------- MiniLM


def _minilm_numpy(params, ids, num_heads):
  """One BERT layer (post-LN, erf GELU) + attention-masked mean pooling + L2 norm, in float64 numpy."""
  from scipy.special import erf
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  layer_norm = lambda x, name: ((x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
                                * p[name + ".weight"] + p[name + ".bias"])
  dense = lambda x, name: x @ p[name + ".weight"].T + p[name + ".bias"]
  out = []
  for row in ids:
    tokens = row[row != 0]  # padding (id 0) is sliced away instead of masked
    n, width = len(tokens), p["embeddings.word_embeddings.weight"].shape[1]
    h = (p["embeddings.word_embeddings.weight"][tokens] + p["embeddings.position_embeddings.weight"][:n]
         + p["embeddings.token_type_embeddings.weight"][0])
    h = layer_norm(h, "embeddings.LayerNorm")
    pre, d = "encoder.layer.0.", width // num_heads
    q, k, v = (dense(h, pre + "attention.self." + m) for m in ("query", "key", "value"))
    heads = []
    for j in range(num_heads):
      cols = slice(j * d, (j + 1) * d)
      scores = q[:, cols] @ k[:, cols].T / np.sqrt(d)
      att = np.exp(scores - scores.max(1, keepdims=True))
      heads.append(att / att.sum(1, keepdims=True) @ v[:, cols])
    attended = dense(np.concatenate(heads, 1), pre + "attention.output.dense")
    h = layer_norm(h + attended, pre + "attention.output.LayerNorm")
    inner = dense(h, pre + "intermediate.dense")
    ff = dense(0.5 * inner * (1 + erf(inner / np.sqrt(2))), pre + "output.dense")
    h = layer_norm(h + ff, pre + "output.LayerNorm")
    pooled = h.mean(0)
    out.append(pooled / np.linalg.norm(pooled))
  return np.stack(out)


def test_minilm_layer_matches_numpy_with_padding():
  """The STS-B encoder's BERT code with one layer on tiny random weights (vocab 12, width 8, 2 heads,
  FFN 16) against a numpy forward pass that drops the padding instead of masking it."""
  rng = np.random.default_rng(0)
  shapes = {"embeddings.word_embeddings.weight": (12, 8), "embeddings.position_embeddings.weight": (10, 8),
            "embeddings.token_type_embeddings.weight": (2, 8)}
  for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
    shapes[f"encoder.layer.0.{name}.weight"], shapes[f"encoder.layer.0.{name}.bias"] = (8, 8), (8,)
  shapes.update({"encoder.layer.0.intermediate.dense.weight": (16, 8),
                 "encoder.layer.0.intermediate.dense.bias": (16,),
                 "encoder.layer.0.output.dense.weight": (8, 16), "encoder.layer.0.output.dense.bias": (8,)})
  params = {name: rng.normal(0, 0.5, shape).astype(np.float32) for name, shape in shapes.items()}
  for name in ("embeddings.LayerNorm", "encoder.layer.0.attention.output.LayerNorm",
               "encoder.layer.0.output.LayerNorm"):
    params[name + ".weight"] = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    params[name + ".bias"] = rng.normal(0, 0.2, 8).astype(np.float32)
  ids = np.array([[1, 5, 3, 7, 2, 0, 0, 0], [1, 4, 9, 11, 6, 8, 10, 2]], np.int32)
  got = minilm._bert_mean_pool({k: jnp.asarray(v) for k, v in params.items()}, jnp.asarray(ids),
                             num_layers=1, num_heads=2)
  # float32 vs float64: ~1e-7 apart; the tanh GELU approximation moves the result by ~1e-4
  np.testing.assert_allclose(got, _minilm_numpy(params, ids, num_heads=2), rtol=0, atol=2e-6)


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
