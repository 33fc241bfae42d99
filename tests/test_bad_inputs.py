"""Table of bad inputs across losses, weighting, priors, metrics, FDS, config, data files and checkpoints.

A case is handled when it raises the expected exception type (or a subclass, e.g. `CorruptFileError`
for ValueError) with a message that names the value (or file) at fault; `test_every_bad_input_is_handled`
counts them and lists any that are not.
"""

import os
import re
import sys

import jax.numpy as jnp
import ml_collections
import numpy as np

from dirjax import checkpoint, fds, losses, metrics, priors, train, weighting, writers
from dirjax.data import nyud2, stsb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crash_worker  # noqa: E402
from test_data_stsb import _config as stsb_config, make_stsb  # noqa: E402

P, Y = np.zeros((4, 1), np.float32), np.ones((4, 1), np.float32)


def config(**overrides) -> ml_collections.ConfigDict:
  c = crash_worker.get_config()
  c.update(overrides)
  return c


def _write(path, data: bytes) -> str:
  with open(path, "wb") as f:
    f.write(data)
  return str(path)


def _half(path) -> str:
  with open(path, "rb") as f:
    data = f.read()
  return _write(path, data[:len(data) // 2])


def _prior_file(tmp, **arrays) -> str:
  path = str(tmp / "p.npz")
  np.savez(path, format_version=np.array(1), **arrays)
  return path


def _stsb_cache(tmp, corrupt):
  root = make_stsb(str(tmp / "d"))
  cfg = stsb_config(root, str(tmp / "cache"))
  path = stsb.prepare(root, cfg.cache_dir, encoder="tokens", max_seq_len=40)
  corrupt(path)
  return lambda: stsb.get_data(cfg, seed=0)


def _saved(tmp, state=None):
  ckpt = checkpoint.Checkpointer(tmp / "ck")
  ckpt.save(1, state if state is not None else {"w": jnp.ones(3)}, {"epoch": 1}, is_best=True)
  ckpt.close()
  return checkpoint.Checkpointer(tmp / "ck")


IDENTITY = {"config": {"batch_size": 8, "optimizer": {"lr": 0.1}}, "run": {"steps_per_epoch": 4}}

# (name, builder(tmp_path) -> zero-argument callable, expected exception, regex the message must match)
CASES = [
  # losses
  ("loss: [B] targets", lambda t: lambda: losses.mse(np.zeros(4), np.zeros(4)), ValueError, r"shape \(4,\).*\[B, 1\]"),
  ("loss: integer predictions", lambda t: lambda: losses.l1(np.zeros((4, 1), int), Y), TypeError, "dtype int"),
  ("loss: shape mismatch", lambda t: lambda: losses.mse(np.zeros((4, 2)), Y), ValueError, r"\(4, 2\) != target"),
  ("loss: negative weight", lambda t: lambda: losses.mse(P, Y, weights=np.array([1., -2, 1, 1])), ValueError,
   r">= 0.*\[-2.0\]"),
  ("loss: NaN weight", lambda t: lambda: losses.huber(P, Y, weights=np.array([1., np.nan, 1, 1])), ValueError,
   "finite and >= 0"),
  ("loss: weights of the wrong shape", lambda t: lambda: losses.mse(P, Y, weights=np.ones(3)), ValueError,
   r"weights has shape \(3,\)"),
  ("loss: noise_var 0", lambda t: lambda: losses.bmc_loss(P, Y, 0.0), ValueError, "noise_var.*got 0.0"),
  ("loss: noise_var NaN", lambda t: lambda: losses.bmc_loss(P, Y, np.nan), ValueError, "noise_var.*got nan"),
  ("loss: negative GMM weight", lambda t: lambda: losses.gai_loss(P, Y, 1.0, np.zeros((2, 1)), np.ones((2, 1, 1)),
                                                                  np.array([1.5, -0.5])), ValueError, "gmm_weights"),
  ("loss: unknown name", lambda t: lambda: losses.get_loss("mae"), ValueError, "unknown loss 'mae'"),
  ("loss: unknown kwarg", lambda t: lambda: losses.get_loss("huber", delta=1.0, betta=2), ValueError, "betta"),
  ("loss: NaN training labels", lambda t: lambda: losses.validate_targets(np.array([1., np.nan])), ValueError,
   "1 non-finite"),
  # weighting
  ("weighting: unknown reweight", lambda t: lambda: weighting.prepare_weights(np.arange(10.), "inv"), ValueError,
   "'inv'"),
  ("weighting: even LDS kernel size", lambda t: lambda: weighting.kernel_window("gaussian", 4, 2.0), ValueError, "ks"),
  ("weighting: NaN labels", lambda t: lambda: weighting.finite_array(np.array([1., np.inf]), "labels"), ValueError,
   "labels"),
  ("weighting: unknown kernel", lambda t: lambda: weighting.kernel_window("box", 5, 2.0), ValueError, "'box'"),
  # priors
  ("prior: GMM with negative variance", lambda t: lambda: priors.GMMPrior(np.zeros((1, 1)), -np.ones((1, 1, 1)),
                                                                          np.ones(1)), ValueError, "positive definite"),
  ("prior: GMM weights not summing to 1",
   lambda t: lambda: priors.GMMPrior(np.zeros((2, 1)), np.ones((2, 1, 1)), np.array([.5, .6])), ValueError, "sum to 1"),
  ("prior: NaN bucket centre", lambda t: lambda: priors.BucketPrior(np.array([0., np.nan]), np.array([.5, .5])),
   ValueError, "centers contains NaN"),
  ("prior: missing file", lambda t: lambda: priors.load_prior(str(t / "none.npz")), FileNotFoundError, "none.npz"),
  ("prior: half-written file", lambda t: (lambda p: lambda: priors.load_prior(p))(
    _half(_prior_file(t, kind=np.array("gmm"), means=np.zeros((1, 1)), covs=np.ones((1, 1, 1)), weights=np.ones(1)))),
   ValueError, r"p\.npz is not a readable prior"),
  ("prior: file with negative variance", lambda t: (lambda p: lambda: priors.load_prior(p))(
    _prior_file(t, kind=np.array("gmm"), means=np.zeros((1, 1)), covs=-np.ones((1, 1, 1)), weights=np.ones(1))),
   ValueError, r"p\.npz holds an invalid gmm prior"),
  ("prior: wrong kind", lambda t: (lambda p: lambda: priors.load_prior(p, expected_kind="bucket"))(
    _prior_file(t, kind=np.array("gmm"), means=np.zeros((1, 1)), covs=np.ones((1, 1, 1)), weights=np.ones(1))),
   ValueError, "'bucket' prior was expected"),
  ("prior: more components than labels", lambda t: lambda: priors.fit_gmm(np.arange(3.), 5), ValueError,
   "n_components"),
  # metrics
  ("metrics: length mismatch", lambda t: lambda: metrics.shot_metrics(np.zeros(3), np.zeros(4), np.zeros(4)),
   ValueError, "3.*4|4.*3"),
  ("metrics: NaN labels", lambda t: lambda: metrics.shot_metrics(np.zeros(2), np.array([1., np.nan]), np.zeros(2)),
   ValueError, "labels"),
  ("metrics: depth mask shape", lambda t: lambda: metrics.depth_metrics(np.ones((2, 3)), np.ones((2, 3)),
                                                                        mask=np.ones(5, bool)), ValueError, "mask"),
  # FDS
  ("fds: unknown bucketing", lambda t: lambda: fds.FDS(4, bucketing="round"), ValueError, "bucketing='round'"),
  ("fds: even kernel", lambda t: lambda: fds.FDS(4, ks=4), ValueError, "ks must be odd"),
  ("fds: momentum 1", lambda t: lambda: fds.FDS(4, momentum=1.0), ValueError, "momentum"),
  ("fds: clip_min > clip_max", lambda t: lambda: fds.FDS(4, clip_min=2.0, clip_max=1.0), ValueError, "clip_min"),
  ("fds: feature width", lambda t: lambda: fds.accumulate(fds.BucketSums.zeros(3, 4), jnp.zeros((2, 5)),
                                                          jnp.zeros(2, int)), ValueError, "5 dims"),
  # CLI / config
  # each section is checked by its own builder when the trainer builds the objective
  ("config: unknown loss", lambda t: lambda: losses.build_term(config(loss={"name": "mae"}).loss, config(), None),
   ValueError,
   "unknown loss.name 'mae'"),
  ("config: unknown reweight", lambda t: lambda: weighting.weight_table(config(reweight={"method": "inv"}).reweight, None),
   ValueError,
   "'inv'"),
  ("config: batch_size 0", lambda t: lambda: train.check_config(config(batch_size=0)), ValueError, "batch_size"),
  ("config: select_metric form", lambda t: lambda: train.check_config(config(eval={"select_metric": "mae"})),
   ValueError, "'mae'"),
  ("config: select_split not evaluated", lambda t: lambda: train.check_config(config(eval={"select_split": "train"})),
   ValueError, "'train'"),
  ("config: missing prior file",
   lambda t: lambda: priors.from_config("gmm", config(loss={"name": "gai", "prior": "x.npz"}).loss, config(), None),
   ValueError, "x.npz"),
  ("config: init_from not a run", lambda t: lambda: train.check_config(config(init_from=str(t))), ValueError,
   "init_from"),
  ("config: corrupt config.json", lambda t: (lambda: train.load_config(str(t)))
   if _write(t / "config.json", b"{\"seed\": ") else None, ValueError, r"config\.json"),
  ("config: workdir under a file", lambda t: (lambda: train.train_and_evaluate(config(), str(t / "f" / "run")))
   if _write(t / "f", b"") else None, NotADirectoryError, "is a file"),
  # data files
  ("data: truncated STS-B cache", lambda t: _stsb_cache(t, _half), ValueError,
   r"stsb_tokens_40\.npz is unreadable.*delete it"),
  ("data: STS-B cache without arrays", lambda t: _stsb_cache(t, lambda p: np.savez(p, x=np.zeros(1))),
   ValueError, r"lacks the array.*delete it"),
  ("data: garbage .npy", lambda t: (lambda p: lambda: writers.load_npy(p, fix="delete it"))(
    _write(t / "m.npy", b"\x93NUMPY garbage")), ValueError, r"m\.npy is unreadable"),
  ("data: missing NYUD2 directory", lambda t: lambda: nyud2.prepare(str(t / "nyud2")), FileNotFoundError, "nyud2"),
  # checkpoints
  ("checkpoint: none in directory", lambda t: lambda: checkpoint.Checkpointer(t / "none").restore({"w": jnp.ones(3)}),
   checkpoint.CheckpointError, "no latest checkpoint found"),
  ("checkpoint: step not kept", lambda t: lambda: _saved(t).restore({"w": jnp.ones(3)}, 7),
   checkpoint.CheckpointError, r"no checkpoint for step 7.*kept steps: \[1\]"),
  ("checkpoint: other shape", lambda t: lambda: _saved(t).restore({"w": jnp.ones(4)}), checkpoint.CheckpointError,
   r"w: checkpoint float32\[3\] vs target float32\[4\]"),
  ("checkpoint: eval on a mistyped workdir", lambda t: lambda: checkpoint.require_checkpoints(t / "wrok"),
   checkpoint.CheckpointError, "no such directory.*--mode=train"),
  ("checkpoint: NaN state", lambda t: lambda: checkpoint.Checkpointer(t / "c").save(
    1, {"w": jnp.array([1., jnp.nan])}, {}, is_best=False), FloatingPointError, "NaN/inf values in 1"),
  ("checkpoint: max_to_keep 0", lambda t: lambda: checkpoint.Checkpointer(t, max_to_keep=0), ValueError,
   "max_to_keep"),
  ("checkpoint: resume with other lr", lambda t: lambda: checkpoint.Checkpointer(
    _saved_with_identity(t).directory, identity={**IDENTITY, "config": {"batch_size": 8, "optimizer": {"lr": 0.2}}}
  ).check_resume(), ValueError, r"optimizer.lr: 0.1 \(checkpoints\) -> 0.2"),
  ("checkpoint: resume with other batch size", lambda t: lambda: checkpoint.Checkpointer(
    _saved_with_identity(t).directory, identity={**IDENTITY, "config": {"batch_size": 16, "optimizer": {"lr": 0.1}}}
  ).check_resume(allow_change=True), ValueError, r"batch_size: 8 \(checkpoints\) -> 16"),
]


def _saved_with_identity(tmp):
  ckpt = checkpoint.Checkpointer(tmp / "ci", identity=IDENTITY)
  ckpt.save(1, {"w": jnp.ones(3)}, {}, is_best=False)
  ckpt.close()
  return ckpt


def test_every_bad_input_is_handled(tmp_path):
  assert len(CASES) >= 40
  unhandled = []
  for i, (name, build, error, pattern) in enumerate(CASES):
    tmp = tmp_path / str(i)
    tmp.mkdir()
    try:
      build(tmp)()
    except error as e:
      if not re.search(pattern, str(e), re.S):
        unhandled.append(f"{name}: message {str(e)[:200]!r} does not match {pattern!r}")
    except Exception as e:  # noqa: BLE001 - a wrong type is an unhandled case, reported below
      unhandled.append(f"{name}: {type(e).__name__}: {str(e)[:200]}")
    else:
      unhandled.append(f"{name}: accepted")
  handled = len(CASES) - len(unhandled)
  print(f"bad inputs handled: {handled}/{len(CASES)}")
  assert not unhandled, "\n".join(unhandled)
