"""Trainer behaviour: exact resumption, RRT initialisation, the loss-explosion guard, the Reweight
baseline's weights, and clear errors for bad configs."""

import os
import sys
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dirjax import optim, reporting, train

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from configs import synthetic_1d  # noqa: E402


def tiny_config(**overrides) -> ml_collections.ConfigDict:
  """4 epochs x 4 steps of 8 on the 1-D benchmark; MLP with dropout, FDS and BMC with learnable σ."""
  c = synthetic_1d.get_config("smoke")
  c.variants = ml_collections.ConfigDict()
  c.num_epochs = 4
  c.data.num_train = 32
  c.eval.every_epochs = 2
  c.checkpoint.every_epochs = 1
  c.checkpoint.max_to_keep = 5
  c.model = ml_collections.ConfigDict(
    {"name": "mlp", "in_features": 1, "hidden": (8,), "out_dim": 1, "dropout": 0.1})
  c.loss.name, c.loss.fix_noise_sigma = "bmc", False
  c.fds.enabled = True
  c.optimizer.lr = 1e-2
  c.update(overrides)
  c.lock()
  return c


def _latest_state(workdir: str, config) -> tuple[dict, dict]:
  return train.Experiment(config).restore(os.path.join(workdir, "checkpoints"), "latest")


def _leaves(state) -> list[np.ndarray]:
  return [np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
          for x in jax.tree.leaves(state)]


def test_resume_after_preemption_is_exact(tmp_path):
  config = tiny_config()
  full = train.train_and_evaluate(config, str(tmp_path / "full"))
  # Preempted in the middle of epoch 1 (the last checkpoint is the end of epoch 0), then rerun.
  stopped = train.train_and_evaluate(config, str(tmp_path / "resumed"), stop_after_steps=6)
  assert stopped == {"stopped_at_step": 6}
  resumed = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  state_full, meta_full = _latest_state(str(tmp_path / "full"), config)
  state_resumed, meta_resumed = _latest_state(str(tmp_path / "resumed"), config)
  assert meta_full == meta_resumed == {"epoch": 4, "step": 16, "data_position": [4, 0],
                                       "best": meta_full["best"]}
  for a, b in zip(_leaves(state_full), _leaves(state_resumed), strict=True):
    np.testing.assert_array_equal(a, b)
  for split in ("val", "test"):
    assert resumed[split] == full[split]
    assert resumed["last"][split] == full["last"][split]
  # FDS statistics were accumulated (epoch buffer advanced past start_update) and σ trained.
  fds_epoch = state_full["model"]["fds"]["epoch"][...]
  assert int(fds_epoch) == 3
  assert float(state_full["model"]["noise_sigma"][...]) != config.loss.init_noise_sigma


def test_rrt_loads_backbone_and_trains_only_the_head(tmp_path):
  stage1 = tiny_config(loss={"name": "mse"}, num_epochs=2, fds={"enabled": False})
  train.train_and_evaluate(stage1, str(tmp_path / "stage1"))
  best1, _ = train.Experiment(stage1).restore(str(tmp_path / "stage1" / "checkpoints"), "best")
  stage2 = tiny_config(loss={"name": "bmc"}, num_epochs=1, fds={"enabled": False},
                       init_from=str(tmp_path / "stage1"), train_only="head")
  fresh2 = train.Experiment(stage2).fresh_state()
  train.train_and_evaluate(stage2, str(tmp_path / "stage2"))
  final2, _ = _latest_state(str(tmp_path / "stage2"), stage2)

  def by_path(state):
    return {optim.path_str(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(state["model"])
            if jnp.issubdtype(x.dtype, jnp.floating) and "noise_sigma" not in optim.path_str(p)}

  before, start, after = by_path(best1), by_path(fresh2), by_path(final2)
  assert any("head" in k for k in after) and any("layers" in k for k in after)
  for key in after:
    if "head" in key:  # re-initialised (not the stage-1 head), then trained
      assert not np.array_equal(start[key], before[key])
      assert not np.array_equal(after[key], start[key])
    else:  # loaded from stage 1 and frozen
      np.testing.assert_array_equal(start[key], before[key])
      np.testing.assert_array_equal(after[key], before[key])


def test_loss_explosion_stops_naming_the_step(tmp_path):
  # Labels around 1e4 and an initial |w|, |b| <= 1 (PyTorch Linear init) put the first loss far
  # above the 1e6 guard; verified below from the initial parameters in numpy.
  config = tiny_config(fds={"enabled": False}, loss={"name": "mse"}, model={"hidden": (), "dropout": 0.0},
                       data={"train_mean": 1e4, "label_range": (0.0, 2e4)}, log_every_steps=1000)
  experiment = train.Experiment(config)
  state = experiment.fresh_state()
  net = state["model"]
  w, b = float(net["head"]["kernel"][...][0, 0]), float(net["head"]["bias"][...][0])
  index, _ = experiment.train_loader.indices(0)
  batch = experiment.bundle.splits["train"].gather(index[0])
  first_loss = np.mean((batch["inputs"][:, 0] * w + b - batch["targets"][:, 0]) ** 2)
  assert first_loss > train.LOSS_LIMIT
  with pytest.raises(FloatingPointError, match=r"at step 0 \(epoch 0\)"):
    train.train_and_evaluate(config, str(tmp_path))


def test_true_inverse_weights_match_reweight_l2():
  """`ReweightL2` (`loss.py`): Σ_i w_i (p_i − y_i)² with w = (1/p(y)) normalised to sum 1 in the batch."""
  config = tiny_config(fds={"enabled": False}, loss={"name": "mse"}, reweight={"method": "true_inverse"})
  experiment = train.Experiment(config)
  rng = np.random.default_rng(0)
  batch = {"targets": rng.normal(5, 0.5, (8, 1)).astype(np.float32),
           "density": rng.uniform(0.1, 0.8, 8).astype(np.float32),
           "valid": np.array([True] * 6 + [False] * 2)}
  pred = rng.normal(5, 1, (8, 1)).astype(np.float32)
  weights = experiment.objective.sample_weights({k: jnp.asarray(v) for k, v in batch.items()})
  inputs = types.SimpleNamespace(preds=jnp.asarray(pred), targets=jnp.asarray(batch["targets"]), weights=weights,
                                 mask=jnp.asarray(batch["valid"]))
  ours = experiment.objective.terms["loss"](inputs)
  w = 1 / batch["density"][:6]
  expected = np.sum(w / w.sum() * (pred[:6, 0] - batch["targets"][:6, 0]) ** 2)
  np.testing.assert_allclose(float(ours), expected, rtol=1e-5)


def test_config_typo_fails_loudly():
  config = tiny_config()
  with pytest.raises(AttributeError):
    config.num_epoch = 3
  bad = synthetic_1d.get_config("smoke")
  bad.variants = ml_collections.ConfigDict({"typo": {"loss": {"nmae": "bmc"}}})
  bad.lock()
  with pytest.raises(ValueError, match="variant 'typo'"):
    reporting.variant_configs(bad)


@pytest.mark.parametrize("overrides, message", [
  ({"loss": {"name": "bmcc"}}, "unknown loss.name 'bmcc'"),
  ({"model": {"name": "resnet9"}}, "unknown model 'resnet9'"),
  ({"data": {"name": "agedb"}}, "unknown data.name 'agedb'"),
  ({"reweight": {"method": "sqrtinv"}}, "unknown reweight.method 'sqrtinv'"),
  ({"reweight": {"lds": True}}, "reweight.lds needs"),
  ({"loss": {"name": "gai", "prior": "/nonexistent/gmm.npz"}}, "needs loss.prior = 'gmm'"),
  ({"init_from": "/nonexistent/run"}, "init_from='/nonexistent/run' must be the workdir"),
  ({"eval": {"select_split": "train"}}, "select_split 'train'"),
  ({"num_epochs": 0}, "num_epochs must be >= 1"),
  ({"batch_size": 6}, "batch_size=6 must be a positive multiple"),
])
def test_bad_config_values_fail_clearly(overrides, message):
  config = tiny_config(**overrides)
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
    train.Experiment(config)


def test_nan_training_labels_rejected(monkeypatch):
  from dirjax.data import synthetic
  original = synthetic.linear_1d

  def with_nan(config, seed):
    bundle = original(config, seed)
    bundle.train_labels = bundle.train_labels.copy()
    bundle.train_labels[3] = np.nan
    return bundle

  monkeypatch.setitem(synthetic._BUILDERS, "synthetic_1d", with_nan)
  with pytest.raises(ValueError, match="training labels has 1 non-finite"):
    train.Experiment(tiny_config())


USER_DATA = '''
import grain
import numpy as np
from dirjax import weighting
from dirjax.data import DataBundle, scalar_evaluator

def get_data(config, *, seed):
  rng = np.random.default_rng(seed)
  y = {s: rng.exponential(3.0, n).astype(np.float32) for s, n in (("train", 16), ("val", 8))}
  splits = {s: grain.MapDataset.source([{"inputs": np.array([v, 1.0], np.float32), "targets": np.array([v], np.float32)}
                                        for v in y[s]]) for s in y}
  binning = weighting.Binning(20, 0.0, 1.0)
  return DataBundle(splits=splits, train_augment=None, train_labels=y["train"], binning=binning,
                    fds_buckets={"bucket_num": 20, "bucket_start": 0, "bucketing": "integer"},
                    evaluate=scalar_evaluator({"val": y["val"]}, y["train"], binning))
'''

USER_MODEL = '''
from flax import nnx
from dirjax.models.base import Encoder

class TwoLayer(Encoder):
  def __init__(self, width=4, *, rngs):
    self.body = nnx.Linear(2, width, rngs=rngs)
    self.feature_dim = width

  def __call__(self, x):
    return nnx.relu(self.body(x))
'''


def test_own_data_module_and_model_class_by_import_path(tmp_path, monkeypatch):
  """`data.name="pkg.module"` and `model.name="pkg.module:Class"` plug the user's code into the
  trainer without editing dirjax; a wrong path fails naming it."""
  package = tmp_path / "user_dir_pkg"
  package.mkdir()
  (package / "__init__.py").write_text("")
  (package / "data.py").write_text(USER_DATA)
  (package / "nets.py").write_text(USER_MODEL)
  monkeypatch.syspath_prepend(str(tmp_path))
  config = tiny_config(data={"name": "user_dir_pkg.data"}, eval={"splits": ("val",), "select_split": "val"},
                       num_epochs=1, report={"split": "val", "metrics": ("all/mse",)})
  with config.unlocked():
    config.model = ml_collections.ConfigDict({"name": "user_dir_pkg.nets:TwoLayer", "width": 4})
  result = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert result["val"]["all"]["count"] == 8 and np.isfinite(result["val"]["all"]["mse"])
  with pytest.raises(ValueError, match="unknown data.name 'user_dir_pkg.nope'"):
    train.Experiment(tiny_config(data={"name": "user_dir_pkg.nope"}))
  with pytest.raises(ValueError, match="cannot import 'Missing' from 'user_dir_pkg.nets'"):
    train.Experiment(tiny_config(model={"name": "user_dir_pkg.nets:Missing"}))


def test_sigma_rule_starts_stage2_at_the_stage1_val_rmse(tmp_path):
  """`loss.init_noise_sigma_rule="stage1_val_rmse"`: σ₀ = √(mean squared error of the stage-1 best
  model's val predictions), recomputed here in numpy from the predictions the run saved."""
  stage1 = tiny_config(loss={"name": "mse"}, num_epochs=2, fds={"enabled": False})
  train.train_and_evaluate(stage1, str(tmp_path / "stage1"))
  saved = np.load(tmp_path / "stage1" / "predictions_val.npz")
  rmse = np.sqrt(np.mean((saved["preds"].astype(np.float64) - saved["targets"]) ** 2))
  stage2 = tiny_config(loss={"name": "bmc", "init_noise_sigma_rule": "stage1_val_rmse"}, num_epochs=1,
                       fds={"enabled": False}, init_from=str(tmp_path / "stage1"), train_only="head")
  sigma0 = float(train.Experiment(stage2).fresh_state()["model"]["noise_sigma"][...])
  assert sigma0 == pytest.approx(rmse, rel=1e-5)
  assert sigma0 != pytest.approx(stage2.loss.init_noise_sigma, rel=1e-2)  # the rule, not the number
  no_stage1 = tiny_config(loss={"name": "bmc", "init_noise_sigma_rule": "stage1_val_rmse"})
  with pytest.raises(ValueError, match="needs init_from"):
    train.Experiment(no_stage1)
  with pytest.raises(ValueError, match="init_noise_sigma_rule must be one of"):
    train.Experiment(tiny_config(loss={"name": "bmc", "init_noise_sigma_rule": "label_std"}))
