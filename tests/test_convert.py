"""`dirjax.convert`: reference PyTorch checkpoints → dirjax models and workdirs.

Oracle: PyTorch modules with the reference parameter names (tests/torch_reference_models.py) run on
the same random inputs; dirjax's eval predictions (and FDS-calibrated features) must match within
1e-4 relative (max |dirjax − torch| / max |torch|). Skipped where torch is not installed
(`pip install dirjax[convert]`).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
from flax import nnx  # noqa: E402

from dirjax import convert, models, train  # noqa: E402
from dirjax import fds as fds_lib  # noqa: E402
from dirjax.models.regressor import Regressor  # noqa: E402
from tests import fixtures_age  # noqa: E402
from tests import torch_reference_models as ref  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-4


def relative_error(ours, theirs) -> float:
  ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
  assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
  return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def converted_model(torch_model, path, model_config: dict, fds: dict | None = None, noise_sigma=None, **save):
  """Saves `torch_model` the reference way, converts it and returns the dirjax `Regressor`."""
  ref.save_reference_checkpoint(torch_model, path, **save)
  state_dict, extras = convert.load_torch_checkpoint(path)
  arrays = convert.to_dirjax_arrays(state_dict, ml_collections.ConfigDict(model_config))
  if noise_sigma is not None:
    arrays["noise_sigma"] = np.float32(noise_sigma)
  fds_module = None if fds is None else fds_lib.FDS(**fds)
  encoder = models.get_model(ml_collections.ConfigDict(model_config), rngs=nnx.Rngs(0))
  model = Regressor(encoder, rngs=nnx.Rngs(0), fds=fds_module, init_noise_sigma=None if noise_sigma is None else 1.0)
  nnx.update(model, convert.place(arrays, nnx.state(model)))
  model.eval()
  return model, extras


def calibrated(model, features, labels, epoch=5):
  """dirjax FDS calibration of `features` (training mode, epoch ≥ start_smooth)."""
  model.train()
  out = model.fds(jnp.asarray(features), jnp.asarray(labels, jnp.float32), epoch)
  model.eval()
  return np.asarray(out)


# ------------------------------------------------------------------------------------------------
# Layout conversions.


def test_conv_and_linear_layouts_match_the_pytorch_ops():
  """OIHW → HWIO and [out, in] → [in, out]: flax's conv / dense on the converted kernel give torch's outputs."""
  g = torch.Generator().manual_seed(0)
  conv = torch.nn.Conv2d(3, 5, (3, 2), bias=False)
  x = torch.randn(2, 3, 6, 7, generator=g)
  kernel = convert.conv_kernel(conv.weight.detach().numpy())
  assert kernel.shape == (3, 2, 3, 5)
  ours = nnx.Conv(3, 5, (3, 2), padding="VALID", use_bias=False, rngs=nnx.Rngs(0))
  ours.kernel[...] = jnp.asarray(kernel)
  expected = conv(x).detach().numpy().transpose(0, 2, 3, 1)
  assert relative_error(ours(jnp.asarray(x.numpy().transpose(0, 2, 3, 1))), expected) < 1e-6
  linear = torch.nn.Linear(4, 3)
  v = torch.randn(5, 4, generator=g)
  np.testing.assert_allclose(v.numpy() @ convert.linear_kernel(linear.weight.detach().numpy()) + linear.bias.detach().numpy(),
                             linear(v).detach().numpy(), rtol=1e-6, atol=1e-6)


def test_lstm_gates_and_summed_bias_match_torch():
  """One LSTM direction: weight_ih / weight_hh transposed, bias_ih + bias_hh, gate order i, f, g, o."""
  lstm = torch.nn.LSTM(3, 4, batch_first=True)
  ref.randomize(lstm, torch.Generator().manual_seed(1))
  x = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(2))
  expected = lstm(x)[0].detach().numpy()
  names = {f"pair_encoder._phrase_layer._module.{k}": v.detach().numpy() for k, v in lstm.state_dict().items()}
  arrays = convert.bilstm_arrays(names, None)
  cell = nnx.OptimizedLSTMCell(3, 4, rngs=nnx.Rngs(0))
  cell.dense_i.kernel[...] = arrays["lstm/0/forward_rnn/cell/dense_i/kernel"]
  cell.dense_h.kernel[...] = arrays["lstm/0/forward_rnn/cell/dense_h/kernel"]
  cell.dense_h.bias[...] = arrays["lstm/0/forward_rnn/cell/dense_h/bias"]
  assert relative_error(nnx.RNN(cell)(jnp.asarray(x.numpy())), expected) < 1e-5


# ------------------------------------------------------------------------------------------------
# Each covered model: converted dirjax model == the reference-named PyTorch model.


def test_age_resnet50_with_fds_matches_pytorch(tmp_path):
  torch_model = ref.AgeResNet(ref.Bottleneck, (1, 2, 1, 1), width=4, fds=(20, 3), seed=0).eval()
  x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(3))
  labels = torch.tensor([[3.0], [4.0], [7.0], [7.0], [12.0], [19.0]])
  with torch.no_grad():
    pred, features = torch_model(x)
    smoothed = torch_model.FDS.calibrate(features, labels, clip=(0.1, 10.0))
  model, _ = converted_model(
    torch_model, str(tmp_path / "ckpt.pth.tar"),
    {"name": "resnet50", "width": 4, "stage_sizes": (1, 2, 1, 1), "out_dim": 1},
    fds={"feature_dim": 128, "bucket_num": 20, "bucket_start": 3, "edge_pooling": "presence"})
  ours, our_features, *_ = model(jnp.asarray(x.numpy().transpose(0, 2, 3, 1)))
  errors = {"pred": relative_error(ours, pred.numpy()), "features": relative_error(our_features, features.numpy()),
            "calibrated": relative_error(calibrated(model, our_features, labels.numpy()), smoothed.numpy())}
  print("age resnet50 + FDS max relative errors:", errors)
  assert max(errors.values()) < TOLERANCE
  fds = model.fds
  assert int(fds.epoch[...]) == 7 and fds.epoch[...].dtype == jnp.int32 and fds.num_samples_tracked[...].dtype == jnp.int32
  np.testing.assert_array_equal(fds.num_samples_tracked[...], torch_model.FDS.num_samples_tracked.numpy())


def test_balanced_mse_resnet50_with_sigma_matches_pytorch(tmp_path):
  """jiawei-ren/BalancedMSE imdb-wiki-dir: the DIR ResNet-50 (no FDS) + σ, which the reference does not save."""
  torch_model = ref.AgeResNet(ref.Bottleneck, (1, 1, 2, 1), width=4, seed=1).eval()
  x = torch.randn(5, 3, 40, 40, generator=torch.Generator().manual_seed(4))
  with torch.no_grad():
    pred, _ = torch_model(x)
  model, extras = converted_model(
    torch_model, str(tmp_path / "bmse.pth.tar"), {"name": "resnet50", "width": 4, "stage_sizes": (1, 1, 2, 1)},
    noise_sigma=convert.noise_sigma_of({}, 8.25, ml_collections.ConfigDict({"loss": {"init_noise_sigma": 10.0}})))
  error = relative_error(model(jnp.asarray(x.numpy().transpose(0, 2, 3, 1)))[0], pred.numpy())
  print("balanced-mse resnet50 max relative error:", error)
  assert error < TOLERANCE
  assert float(model.noise_sigma[...]) == 8.25
  config = ml_collections.ConfigDict({"loss": {"init_noise_sigma": 10.0}})
  assert convert.noise_sigma_of({"noise_sigma": torch.tensor(3.5)}, None, config) == 3.5
  assert convert.noise_sigma_of(extras, None, config) == 10.0  # not in the reference checkpoint


def test_nyud2_depth_network_with_fds_matches_pytorch(tmp_path):
  torch_model = ref.DepthNet(width=8, stage_sizes=(1, 1, 2, 1), fds=(30, 7), seed=2).eval()
  x = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(5))
  with torch.no_grad():
    pred, features = torch_model(x)
    pixels = features.permute(0, 2, 3, 1).reshape(-1, 16)
    depth = 0.7 + 2.2 * torch.rand(pixels.shape[0], 1, generator=torch.Generator().manual_seed(6))
    # bucket = floor(10 · depth) (the NYUD2 reference's 0.1 m depth buckets); the oracle takes integer buckets
    smoothed = torch_model.R.FDS.calibrate(pixels, torch.floor(depth.double() * 10).float(), clip=(0.2, 5.0))
  model, _ = converted_model(
    torch_model, str(tmp_path / "checkpoint_best.pth.tar"), {"name": "depth_resnet50", "width": 8,
                                                             "stage_sizes": (1, 1, 2, 1)},
    fds={"feature_dim": 16, "bucket_num": 30, "bucket_start": 7, "bucketing": "floor10", "clip_min": 0.2,
         "clip_max": 5.0, "zero_var_rule": "whole_bucket"})
  ours, our_features, *_ = model(jnp.asarray(x.numpy().transpose(0, 2, 3, 1)))
  errors = {"pred": relative_error(ours, pred.numpy().transpose(0, 2, 3, 1)),
            "features": relative_error(our_features, features.numpy().transpose(0, 2, 3, 1)),
            "calibrated": relative_error(calibrated(model, pixels.numpy(), depth.numpy()), smoothed.numpy())}
  print("nyud2 depth + FDS max relative errors:", errors)
  assert max(errors.values()) < TOLERANCE


def test_stsb_bilstm_with_fds_matches_pytorch(tmp_path):
  torch_model = ref.StsModel(vocab=30, dim=6, hidden=5, fds=(50, 0), seed=3).eval()
  g = torch.Generator().manual_seed(7)
  lengths = torch.tensor([[3, 7], [7, 1], [5, 5], [2, 6]])
  ids = torch.randint(1, 30, (4, 2, 7), generator=g) * (torch.arange(7) < lengths[..., None])
  labels = torch.tensor([[0.0], [1.35], [2.55], [4.9]])  # away from float32 bucket edges
  with torch.no_grad():
    pred, features = torch_model(ids)
    smoothed = torch_model.FDS.calibrate(features, torch.floor(labels.double() * 10).float(), clip=(0.5, 2.0))
  model, _ = converted_model(
    torch_model, str(tmp_path / "model_state_best.th"),
    {"name": "bilstm", "vocab_size": 30, "embed_dim": 6, "hidden": 5, "num_layers": 2},
    fds={"feature_dim": 40, "bucket_num": 50, "bucketing": "floor10", "clip_min": 0.5, "clip_max": 2.0},
    data_parallel=False, wrapped=False)
  ours, our_features, *_ = model(jnp.asarray(ids.numpy(), jnp.int32))
  errors = {"pred": relative_error(ours, pred.numpy()), "features": relative_error(our_features, features.numpy()),
            "calibrated": relative_error(calibrated(model, our_features, labels.numpy()), smoothed.numpy())}
  print("sts-b bilstm + FDS max relative errors:", errors)
  assert max(errors.values()) < TOLERANCE


def test_full_size_resnet50_maps_one_to_one():
  """The paper's ResNet-50 + FDS(2048-d, AgeDB buckets): every reference tensor has exactly one dirjax
  variable of the same size and vice versa (checked on the abstract model, nothing is compiled)."""
  torch_model = ref.AgeResNet(ref.Bottleneck, (3, 4, 6, 3), width=64, fds=(100, 3))
  state_dict = {k: v.numpy() for k, v in torch_model.state_dict().items() if "num_batches_tracked" not in k}
  arrays = convert.to_dirjax_arrays(state_dict, ml_collections.ConfigDict({"name": "resnet50"}))
  abstract = nnx.eval_shape(lambda: Regressor(models.get_model(
    ml_collections.ConfigDict({"name": "resnet50"}), rngs=nnx.Rngs(0)), rngs=nnx.Rngs(0), fds=fds_lib.FDS(2048, 100, 3)))
  placed = convert.place(arrays, nnx.state(abstract))
  assert len(arrays) == len(state_dict) == 275  # 53 convs + 53 BN × 4 + linear × 2 + 8 FDS buffers
  torch_params = sum(p.numel() for p in torch_model.parameters())
  ours = sum(int(np.prod(v.shape)) for _, v in nnx.to_flat_state(nnx.state(abstract, nnx.Param)))
  assert ours == torch_params == 23_510_081
  assert len(nnx.to_flat_state(placed)) == len(arrays)


# ------------------------------------------------------------------------------------------------
# Clear errors.


def test_missing_and_non_torch_files_are_named(tmp_path):
  with pytest.raises(convert.ConversionError, match="does not exist"):
    convert.load_torch_checkpoint(str(tmp_path / "nope.pth.tar"))
  bogus = tmp_path / "weights.npz"
  np.savez(bogus, a=np.zeros(3))
  with pytest.raises(convert.ConversionError, match="weights.npz.*not a readable PyTorch checkpoint"):
    convert.load_torch_checkpoint(str(bogus))


def test_another_architecture_lists_the_unmatched_names(tmp_path):
  depth = ref.DepthNet(width=4, stage_sizes=(1, 1, 1, 1))
  state = {k: v.numpy() for k, v in depth.state_dict().items() if "num_batches_tracked" not in k}
  with pytest.raises(convert.ConversionError, match=r"checkpoint names this model family does not have.*\n  D\.bn\.bias"):
    convert.to_dirjax_arrays(state, ml_collections.ConfigDict({"name": "resnet50"}))
  # An FDS checkpoint into a config without FDS: the FDS buffers have no place in the model.
  age = ref.AgeResNet(ref.BasicBlock, (1, 1, 1, 1), width=2, fds=(10, 0))
  small = ml_collections.ConfigDict({"name": "resnet18", "width": 2, "stage_sizes": (1, 1, 1, 1)})
  arrays = convert.to_dirjax_arrays({k: v.numpy() for k, v in age.state_dict().items() if "num_batches" not in k}, small)
  model = Regressor(models.get_model(small, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(0))
  with pytest.raises(convert.ConversionError, match=r"8 checkpoint arrays without a place.*\n  fds/epoch"):
    convert.place(arrays, nnx.state(model))
  arrays = {k: v for k, v in arrays.items() if not k.startswith(("fds/", "head/"))}
  with pytest.raises(convert.ConversionError, match=r"2 dirjax model variables the checkpoint does not provide.*\n  head/bias"):
    convert.place(arrays, nnx.state(model))
  wider = Regressor(models.get_model(ml_collections.ConfigDict(
    {"name": "resnet18", "width": 4, "stage_sizes": (1, 1, 1, 1)}), rngs=nnx.Rngs(0)), rngs=nnx.Rngs(0))
  with pytest.raises(convert.ConversionError, match=r"encoder/conv1/kernel: checkpoint shape \[7, 7, 3, 2\] vs model"):
    convert.place(arrays, nnx.state(wider))


# ------------------------------------------------------------------------------------------------
# The CLI: convert → `dirjax.main --mode=eval` → RRT from the converted workdir.


def _run(*args):
  env = dict(os.environ, PYTHONPATH=ROOT)
  done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  return done


def test_cli_converts_evaluates_and_starts_rrt(tmp_path):
  """AgeDB FDS smoke model (ResNet-18, width 4): `python -m dirjax.convert`, then `python -m dirjax.main
  --mode=eval` predicts the test faces as PyTorch does; RRT one step from it keeps the backbone."""
  data_dir = fixtures_age.make_agedb(str(tmp_path / "data"))
  torch_model = ref.AgeResNet(ref.BasicBlock, (1, 1, 1, 1), width=4, fds=(100, 3), seed=4).eval()
  ckpt, workdir = str(tmp_path / "agedb_fds.pth.tar"), str(tmp_path / "converted")
  ref.save_reference_checkpoint(torch_model, ckpt)
  config = ["--config=configs/agedb_fds.py:smoke", f"--config.data.data_dir={data_dir}"]
  _run("-m", "dirjax.convert", f"--checkpoint={ckpt}", f"--workdir={workdir}", *config)
  _run("-m", "dirjax.main", f"--workdir={workdir}", "--mode=eval", *config)

  from configs import agedb_fds, agedb_rrt
  from dirjax import data
  c = agedb_fds.get_config("smoke")
  c.data.data_dir = data_dir
  test = data.get_data(c.data, seed=0).splits["test"]
  images = np.stack([np.asarray(test[i]["inputs"]) for i in range(len(test))])
  with torch.no_grad():
    expected = torch_model(torch.from_numpy(images.transpose(0, 3, 1, 2)).float())[0].numpy()
  saved = np.load(os.path.join(workdir, "predictions_test.npz"))["preds"]
  error = relative_error(saved, expected)
  print("CLI eval (agedb_fds smoke) max relative error:", error)
  assert error < TOLERANCE

  rrt = agedb_rrt.get_config("smoke")
  rrt.data.data_dir = data_dir
  rrt.fds.enabled = True  # the converted run has FDS buffers
  rrt.init_from = workdir
  experiment = train.Experiment(rrt)
  state = experiment.fresh_state()
  net = state["model"]
  np.testing.assert_array_equal(net["encoder"]["conv1"]["kernel"][...],
                                convert.conv_kernel(torch_model.conv1.weight.detach().numpy()))
  np.testing.assert_array_equal(net["fds"]["running_mean"][...], torch_model.FDS.running_mean.numpy())
  assert not np.allclose(net["head"]["kernel"][...][:, 0], torch_model.linear.weight.detach().numpy()[0])
  result = train.train_and_evaluate(rrt, str(tmp_path / "rrt"))
  assert result["test"]["all"]["count"] == len(test) and np.isfinite(result["test"]["all"]["mae"])


def test_convert_balanced_mse_workdir_stores_sigma(tmp_path):
  """`convert` with an IMDB-WIKI BMC config: the trainer restores the model and the given σ; a σ for a
  config without a Balanced-MSE loss is refused."""
  import shutil
  from configs import imdb_bmc, imdb_vanilla
  data_dir = fixtures_age.make_agedb(str(tmp_path / "data"))
  shutil.copy(os.path.join(data_dir, "agedb.csv"), os.path.join(data_dir, "imdb_wiki.csv"))
  torch_model = ref.AgeResNet(ref.BasicBlock, (1, 1, 1, 1), width=4, seed=6)
  ckpt = str(tmp_path / "bmc.pth.tar")
  ref.save_reference_checkpoint(torch_model, ckpt)
  c = imdb_bmc.get_config("smoke")
  c.data.data_dir = data_dir
  convert.convert(ckpt, c, str(tmp_path / "w"), noise_sigma=8.25)
  c.init_from = ""
  state, meta = train.Experiment(c).restore(str(tmp_path / "w" / "checkpoints"), "best")
  assert float(state["model"]["noise_sigma"][...]) == 8.25 and meta["reference_epoch"] == 90
  np.testing.assert_array_equal(state["model"]["head"]["kernel"][...][:, 0],
                                torch_model.linear.weight.detach().numpy()[0])
  assert train.load_config(str(tmp_path / "w")).init_from == ""
  vanilla = imdb_vanilla.get_config("smoke")
  vanilla.data.data_dir = data_dir
  with pytest.raises(convert.ConversionError, match="only for Balanced-MSE configs"):
    convert.convert(ckpt, vanilla, str(tmp_path / "v"), noise_sigma=1.0)
