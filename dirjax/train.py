"""The dirjax trainer: `train_and_evaluate(config, workdir)` and `evaluate(config, workdir)`.

One trainer for every benchmark (the reference has one `train.py` per dataset). A config names the
data, model, loss, re-weighting, FDS and optimizer; see `configs/*.py`. Per epoch:

1. training steps: ONE `jax.jit` step over the `nnx.split` state (params replicated, the global
   batch sharded over `P("data")`, the state donated); the epoch is a traced int32, the last
   partial batch is padded and masked, per-sample weights are looked up on device from a per-bin
   table, Balanced-MSE losses (BMC, GAI, BNI) see the GLOBAL batch and BatchNorm computes its
   statistics over the global batch (the reference's `nn.DataParallel` normalises each GPU's
   sub-batch; ResNets offer `bn_groups` to emulate it);
2. FDS statistics pass (epoch ≥ start_update): a forward pass over `bundle.fds_split` in training
   mode, as the reference (Q9: BatchNorm uses batch statistics AND updates its running averages;
   dropout is active), accumulating per-bucket moments under jit, then `FDS.update`;
3. every `eval.every_epochs` (and at the last epoch): predictions over the eval splits and
   `bundle.evaluate`; the best checkpoint is selected on `eval.select_split` by
   `eval.select_metric` (default val MAE; `eval.balanced_metric` switches to bMAE / bMSE);
4. checkpoints (model incl. BatchStats, FDSStats and σ, optimizer state, step/epoch, data
   position, best metric) every `checkpoint.every_epochs` and at every evaluation. Re-running the
   same command resumes from the latest checkpoint and gives exactly the uninterrupted run.

A loss that is not finite or exceeds 1e6 (the reference IMDB guard) stops the run with an error
naming the step; it is checked from a device-side flag at every log step and before any
checkpoint, never with a per-step host sync. Deliberate deviations from the reference: σ is saved
with the checkpoints (Q5), the synthetic benchmark reports the test metrics of the best-on-val AND
of the last model (Q14), everything is seeded.
"""

import copy
import dataclasses
import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from dirjax import checkpoint as checkpoint_lib
from dirjax import data as data_lib
from dirjax import fds as fds_lib
from dirjax import losses, models, optim, priors, sharding, weighting, writers
from dirjax.data import pipeline

LOSS_LIMIT = 1e6  # reference IMDB-WIKI `train.py`: "Loss explosion" when loss > 1e6 or NaN
REWEIGHT_METHODS = ("none", "inverse", "sqrt_inv", "dense", "true_inverse")
SHOTS = ("all", "many", "medium", "few")


class Regressor(nnx.Module):
  """The task network plus, for a Balanced-MSE loss, the learnable noise scale σ (v = σ²).

  σ is an `nnx.Param` at path `noise_sigma` (own optimizer group, `optim.SIGMA_PATH`); it is a raw
  scalar without a positivity constraint like the reference's `noise_sigma` (Q4).
  """

  def __init__(self, net: nnx.Module, init_noise_sigma: float | None = None):
    self.net = net
    self.noise_sigma = None if init_noise_sigma is None else nnx.Param(jnp.asarray(init_noise_sigma, jnp.float32))

  def __call__(self, x: jax.Array, targets: jax.Array | None = None, epoch: Any = None):
    return self.net(x, targets=targets, epoch=epoch)


# ------------------------------------------------------------------------------------------------
# Config checks.


def select_metric(config: ml_collections.ConfigDict) -> str:
  """The validation metric path used for model selection, e.g. "all/mae" or "balanced/bmae"."""
  metric = config.eval.select_metric
  if config.eval.balanced_metric:
    metric = "balanced/b" + metric.split("/")[-1]
  return metric


def check_config(config: ml_collections.ConfigDict) -> None:
  """Fails early with a message naming the offending value (names are also checked by the
  registries when used: data, model, loss, optimizer)."""
  data_lib.module_name(config.data.name)  # unknown names fail here, before any work
  models.model_class_of(config.model.name)
  if config.loss.name not in losses.REGRESSION_LOSSES + losses.BALANCED_MSE_LOSSES:
    raise ValueError(f"unknown loss.name {config.loss.name!r}; valid: "
                     f"{losses.REGRESSION_LOSSES + losses.BALANCED_MSE_LOSSES}")
  if config.reweight.method not in REWEIGHT_METHODS:
    raise ValueError(f"unknown reweight.method {config.reweight.method!r}; valid: {REWEIGHT_METHODS}")
  if config.reweight.lds and config.reweight.method not in ("inverse", "sqrt_inv"):
    raise ValueError("reweight.lds needs reweight.method 'inverse' or 'sqrt_inv' (as the reference asserts)")
  for name in ("num_epochs", "batch_size", "eval_batch_size", "log_every_steps"):
    if int(config[name]) < 1:
      raise ValueError(f"{name} must be >= 1, got {config[name]}")
  for name in ("eval.every_epochs", "checkpoint.every_epochs", "checkpoint.max_to_keep"):
    section, key = name.split(".")
    if int(config[section][key]) < 1:
      raise ValueError(f"{name} must be >= 1, got {config[section][key]}")
  if config.loss.name in losses.BALANCED_MSE_LOSSES:
    if not config.loss.init_noise_sigma > 0:
      raise ValueError(f"loss.init_noise_sigma must be > 0, got {config.loss.init_noise_sigma}")
    prior = config.loss.prior
    needed = {"gai": "gmm", "bni": "buckets"}.get(config.loss.name)
    if needed and prior != needed and not os.path.isfile(prior):
      raise ValueError(f"loss {config.loss.name!r} needs loss.prior = {needed!r} (fitted on the training "
                       f"labels) or the path of a saved prior file; got {prior!r} (no such file)")
  if len(config.eval.select_metric.split("/")) != 2:
    raise ValueError(f"eval.select_metric must look like 'all/mae', got {config.eval.select_metric!r}")
  if config.eval.select_split not in config.eval.splits:
    raise ValueError(f"eval.select_split {config.eval.select_split!r} is not in eval.splits {config.eval.splits}")
  if config.init_from and not os.path.isfile(os.path.join(config.init_from, "config.json")):
    raise ValueError(f"init_from={config.init_from!r} must be the workdir of a finished dirjax run "
                     "(with config.json and checkpoints/)")


# ------------------------------------------------------------------------------------------------
# Building blocks.


def label_prior(config: ml_collections.ConfigDict, bundle: data_lib.DataBundle):
  """The GAI mixture (`loss.prior = "gmm"`: fitted on `train_labels`) or BNI buckets (`"buckets"`:
  from `train_bin_counts` when the data has them, else a histogram of `train_labels`), or the prior
  file `loss.prior` names; None for the other losses."""
  name, prior = config.loss.name, config.loss.prior
  if name not in ("gai", "bni"):
    return None
  if prior not in ("gmm", "buckets"):
    return priors.load_prior(prior, expected_kind="gmm" if name == "gai" else "bucket")
  if name == "gai":
    return priors.fit_gmm(bundle.train_labels, config.loss.gmm_components, seed=config.seed)
  rw = config.reweight
  lds = dict(lds=rw.lds, lds_kernel=rw.kernel, lds_ks=rw.ks, lds_sigma=rw.sigma, faithful=rw.faithful)
  if bundle.train_bin_counts is not None:
    return priors.bucket_prior_from_counts(bundle.binning.centers(), bundle.train_bin_counts, lds_mode=rw.lds_mode,
                                           bucket_start=bundle.first_counted_bin, **lds)
  return priors.bucket_prior(bundle.train_labels, bundle.binning, **lds)


def build_loss(config: ml_collections.ConfigDict, bundle: data_lib.DataBundle):
  """`losses.get_loss` with the label prior of GAI / BNI (`label_prior`) bound."""
  kwargs = dict(config.loss.kwargs)
  prior = label_prior(config, bundle)
  if isinstance(prior, priors.GMMPrior):
    kwargs.update(gmm_means=prior.means, gmm_covs=prior.covs, gmm_weights=prior.weights)
  elif prior is not None:
    kwargs.update(bucket_centers=prior.centers, bucket_weights=prior.weights)
  return losses.get_loss(config.loss.name, **kwargs)


def weight_table(config: ml_collections.ConfigDict, bundle: data_lib.DataBundle) -> np.ndarray | None:
  """Per-bin loss weights (INV / SQINV, optionally LDS-smoothed, or DenseWeight), or None."""
  rw = config.reweight
  if rw.method in ("none", "true_inverse"):
    return None
  if rw.method == "dense":
    return weighting.dense_weights(bundle.train_labels, alpha=rw.dense_alpha, query=bundle.binning.centers())
  kwargs = dict(lds=rw.lds, lds_kernel=rw.kernel, lds_ks=rw.ks, lds_sigma=rw.sigma, lds_mode=rw.lds_mode,
                faithful=rw.faithful, inverse_clip=tuple(rw.inverse_clip) if rw.inverse_clip else None)
  if bundle.train_bin_counts is not None:
    return weighting.weight_table_from_counts(bundle.train_bin_counts, rw.method,
                                              bucket_start=bundle.first_counted_bin, **kwargs)
  return weighting.bin_weight_table(bundle.train_labels, bundle.binning, rw.method, **kwargs)


def fds_kwargs(config: ml_collections.ConfigDict, bundle: data_lib.DataBundle) -> dict:
  """FDS options: the dataset's bucketing (`bundle.fds_buckets`) overridden by non-None config values."""
  kwargs = dict(bundle.fds_buckets)
  kwargs.update({k: v for k, v in config.fds.items() if k != "enabled" and v is not None})
  return kwargs


def _loss_mask(batch: dict[str, jax.Array]) -> jax.Array:
  """Row mask `valid` [B], combined with a dense task's per-element `mask` when present."""
  valid = batch["valid"]
  if "mask" not in batch:
    return valid
  element = batch["mask"].astype(bool)
  return element & valid.reshape((-1,) + (1,) * (element.ndim - 1))


def _zero_counters() -> dict[str, jax.Array]:
  return {"loss": jnp.zeros((), jnp.float32), "mse": jnp.zeros((), jnp.float32),
          "steps": jnp.zeros((), jnp.int32), "bad_step": jnp.full((), -1, jnp.int32)}


def _lookup(tree: dict, path: str) -> Any:
  for key in path.split("/"):
    tree = tree[key]
  return tree


def _flatten(tree: dict, prefix: str = "") -> dict[str, float]:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}/"))
    elif isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool):
      out[f"{prefix}{k}"] = float(v)
  return out


def _is_key(x: Any) -> bool:
  return jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _raw_keys(state: Any) -> Any:
  """Typed PRNG keys (nnx.Rngs, dropout) as their uint32 data: what orbax stores."""
  return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)


def _abstract_raw_keys(abstract_state: Any) -> Any:
  def raw(x):
    if not _is_key(x):
      return x
    shape = jax.eval_shape(jax.random.key_data, x).shape
    return jax.ShapeDtypeStruct(shape, jnp.uint32, sharding=x.sharding)
  return jax.tree.map(raw, abstract_state)


def _typed_keys(state: Any, abstract_state: Any) -> Any:
  """Inverse of `_raw_keys` (nnx.Rngs keys use the default PRNG implementation)."""
  return jax.tree.map(lambda x, a: jax.random.wrap_key_data(x) if _is_key(a) else x, state, abstract_state)


# ------------------------------------------------------------------------------------------------
# The experiment: data, loaders, state and jitted functions built from one config.


class Experiment:
  """Everything derived from a config. `state = {"model": nnx.State, "optimizer": nnx.State}`."""

  def __init__(self, config: ml_collections.ConfigDict):
    check_config(config)
    self.config = config
    self.mesh = sharding.make_mesh(config.mesh.shape, config.mesh.axes)
    self.bundle = bundle = data_lib.get_data(config.data, seed=config.seed)
    models.check_inputs(config.model, bundle.splits["train"][0]["inputs"])
    losses.validate_targets(bundle.train_labels, "training labels")
    self.train_loader = pipeline.Loader(
      bundle.splits["train"], batch_size=config.batch_size, mesh=self.mesh, shuffle=True, seed=config.seed,
      augment=bundle.train_augment, num_threads=config.input_threads)
    self.eval_loaders = {
      split: pipeline.Loader(bundle.splits[split], batch_size=config.eval_batch_size, mesh=self.mesh,
                             num_threads=config.input_threads)
      for split in config.eval.splits}
    if config.fds.enabled:
      fds_split = bundle.splits[bundle.fds_split]
      self.fds_loader = pipeline.Loader(
        fds_split, batch_size=config.batch_size, mesh=self.mesh, shuffle=bundle.fds_split == "train",
        seed=config.seed + 1, augment=bundle.train_augment if bundle.fds_split == "train" else None,
        num_threads=config.input_threads)
    self.steps_per_epoch = self.train_loader.steps_per_epoch
    self.loss_fn = build_loss(config, bundle)
    table = weight_table(config, bundle)
    self.weight_table = None if table is None else jnp.asarray(table)
    if config.reweight.method == "true_inverse" and "density" not in bundle.splits["train"][0]:
      raise ValueError(f"reweight.method='true_inverse' needs a 'density' field in the training elements; "
                       f"data {config.data.name!r} has none")
    self.balanced = config.loss.name in losses.BALANCED_MSE_LOSSES
    self.sync_every_step = sharding.needs_step_sync(self.mesh)
    self._build_state()
    self._build_steps()

  # -- state ------------------------------------------------------------------------------------

  def _create(self, config: ml_collections.ConfigDict, feature_dim: int | None):
    fds = fds_lib.FDS(feature_dim, **fds_kwargs(config, self.bundle)) if config.fds.enabled else None
    net = models.get_model(config.model, rngs=nnx.Rngs(config.seed), fds=fds)
    model = Regressor(net, config.loss.init_noise_sigma if config.loss.name in losses.BALANCED_MSE_LOSSES else None)
    model.train()
    optimizer = nnx.Optimizer(model, optim.build_optimizer(config, self.steps_per_epoch), wrt=nnx.Param)
    return model, optimizer

  def _feature_dim(self, config: ml_collections.ConfigDict) -> int | None:
    """Width of the encoding before the head, found by abstract evaluation of the model."""
    if not config.fds.enabled:
      return None
    sample = np.asarray(self.bundle.splits["train"][0]["inputs"])[None]

    def features():
      model = models.get_model(config.model, rngs=nnx.Rngs(0))
      model.eval()
      return model(jnp.asarray(sample))[1]

    return int(jax.eval_shape(features).shape[-1])

  def _build_state(self) -> None:
    config = self.config
    feature_dim = self._feature_dim(config)
    model, optimizer = nnx.eval_shape(lambda: self._create(config, feature_dim))
    self.graphdef, abstract_model = nnx.split(model)
    model.eval()
    self.eval_graphdef = nnx.split(model)[0]
    self.opt_graphdef, abstract_opt = nnx.split(optimizer)
    self.replicated = sharding.replicated(self.mesh)
    self.abstract_state = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.replicated),
      {"model": abstract_model, "optimizer": abstract_opt})

    self._feature_dim_value = feature_dim

  def init_state(self) -> dict:
    """Seeded initial state, created eagerly (compiling the initialisers of a ResNet under jit
    costs tens of seconds on CPU) and replicated; every process computes the same values."""
    model, optimizer = self._create(self.config, self._feature_dim_value)
    return jax.device_put({"model": nnx.state(model), "optimizer": nnx.state(optimizer)}, self.replicated)

  def fresh_state(self) -> dict:
    """Initial state; with `init_from` (RRT stage 2) every model variable except the head (and σ)
    comes from the best checkpoint of that run: backbone, BatchNorm and FDS statistics."""
    state = self.init_state()
    if not self.config.init_from:
      return state
    source = load_config(self.config.init_from)
    source_state = _restore_other_run(self, source, self.config.init_from)
    state["model"]["net"] = _replace_except_head(state["model"]["net"], source_state["model"]["net"])
    return state

  # -- jitted steps -----------------------------------------------------------------------------

  def _sample_weights(self, batch: dict[str, jax.Array]) -> jax.Array | None:
    method = self.config.reweight.method
    if method == "true_inverse":
      # Balanced-MSE synthetic `ReweightL2` (Q15): w_i = 1/p(y_i) normalised to sum 1 over the batch,
      # loss Σ_i w_i ‖p_i − y_i‖². Our `mse` averages over n·d elements, hence the factor n·d.
      valid = batch["valid"]
      inverse = jnp.where(valid, 1.0 / jnp.where(valid, batch["density"], 1.0), 0.0)
      count = jnp.sum(valid) * batch["targets"].shape[-1]
      return inverse * (count / jnp.sum(inverse))
    if self.weight_table is None:
      return None
    return self.weight_table[self.bundle.binning.index(batch["targets"])]

  def _build_steps(self) -> None:
    graphdef, opt_graphdef = self.graphdef, self.opt_graphdef

    def train_step(state, batch, epoch, counters):
      model = nnx.merge(graphdef, state["model"])
      optimizer = nnx.merge(opt_graphdef, state["optimizer"])
      targets, mask = batch["targets"], _loss_mask(batch)
      weights = self._sample_weights(batch)

      def loss_fn(model):
        pred, _ = model(batch["inputs"], targets=targets, epoch=epoch)
        if not self.balanced:
          return self.loss_fn(pred, targets, weights=weights, mask=mask), pred
        # Balanced MSE on a dense task: every (masked-in) pixel is a row of one [N, 1] batch, as the
        # NYUD2 reference flattens the selected pixels of the whole batch (balanced_mse spec §3.2).
        flat_mask = mask.reshape(-1) if pred.ndim > 2 else mask
        noise_var = jnp.square(model.noise_sigma[...])
        return self.loss_fn(pred.reshape(-1, pred.shape[-1]), targets.reshape(-1, targets.shape[-1]),
                            mask=flat_mask, noise_var=noise_var), pred

      step = optimizer.step[...].astype(jnp.int32)
      (loss, pred), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
      optimizer.update(model, grads)
      ok = jnp.isfinite(loss) & (loss <= LOSS_LIMIT)
      counters = {
        "loss": counters["loss"] + loss, "steps": counters["steps"] + 1,
        "mse": counters["mse"] + losses.mse(jax.lax.stop_gradient(pred), targets, mask=mask),
        "bad_step": jnp.where((counters["bad_step"] < 0) & ~ok, step, counters["bad_step"])}
      return {"model": nnx.state(model), "optimizer": nnx.state(optimizer)}, counters

    def predict_step(model_state, batch):
      return nnx.merge(self.eval_graphdef, model_state)(batch["inputs"])[0]

    def fds_step(model_state, sums, batch, epoch):
      model = nnx.merge(graphdef, model_state)  # training mode: BN batch statistics (Q9)
      _, features = model(batch["inputs"], targets=batch["targets"], epoch=epoch)
      fds = model.net.fds
      mask = _loss_mask(batch)
      mask = mask[..., 0] if mask.ndim == features.ndim else mask
      sums = fds_lib.accumulate(sums, jax.lax.stop_gradient(features), fds.buckets(batch["targets"])[..., 0], mask)
      return nnx.state(model), sums

    def fds_update(model_state, sums, epoch):
      model = nnx.merge(graphdef, model_state)
      model.net.fds.update(sums, epoch)
      return nnx.state(model)

    repl = self.replicated
    self.train_step = jax.jit(train_step, donate_argnums=(0, 3), out_shardings=(repl, repl))
    self.predict_step = jax.jit(predict_step)
    self.fds_step = jax.jit(fds_step, donate_argnums=(0, 1), out_shardings=(repl, repl))
    self.fds_update = jax.jit(fds_update, donate_argnums=(0,), out_shardings=repl)

  # -- epochs -----------------------------------------------------------------------------------

  def predictions(self, model_state, split: str) -> np.ndarray:
    return pipeline.predict(functools.partial(self.predict_step, model_state), self.eval_loaders[split])

  def evaluate_splits(self, model_state) -> tuple[dict, dict]:
    """(metrics, predictions) per eval split."""
    preds = {split: self.predictions(model_state, split) for split in self.config.eval.splits}
    return {split: self.bundle.evaluate(split, p) for split, p in preds.items()}, preds

  def fds_pass(self, state: dict, epoch: int) -> dict:
    """End-of-epoch FDS statistics over `bundle.fds_split` and `FDS.update` (reference order)."""
    epoch_arr = np.int32(epoch)
    model_state = state["model"]
    sums = jax.device_put(_fds_zero_sums(self, model_state), self.replicated)
    for batch in self.fds_loader(epoch):
      model_state, sums = self.fds_step(model_state, sums, batch, epoch_arr)
      if self.sync_every_step:
        jax.block_until_ready(sums)
    return {"model": self.fds_update(model_state, sums, epoch_arr), "optimizer": state["optimizer"]}

  # -- checkpoints ------------------------------------------------------------------------------

  def save(self, ckpt: checkpoint_lib.Checkpointer, step: int, state: dict, meta: dict, is_best: bool) -> None:
    ckpt.save(step, _raw_keys(state), meta, is_best=is_best)

  def restore(self, directory: str, which: str | int) -> tuple[dict, dict]:
    """(state, meta) of checkpoint `which` ("best", "latest" or a step) under `directory`."""
    with checkpoint_lib.Checkpointer(directory) as ckpt:
      state, meta = ckpt.restore(_abstract_raw_keys(self.abstract_state), which)
    return _typed_keys(state, self.abstract_state), meta


def _fds_zero_sums(experiment: Experiment, model_state) -> fds_lib.BucketSums:
  net = nnx.merge(experiment.graphdef, model_state).net
  return net.fds.zero_sums()


def _replace_except_head(target, source):
  """`source`'s leaves everywhere except under a path containing "head" (re-initialised for RRT)."""
  flat_target = dict(jax.tree_util.tree_leaves_with_path(target))
  flat_source = dict(jax.tree_util.tree_leaves_with_path(source))
  if flat_target.keys() != flat_source.keys():
    raise ValueError("init_from: the pretrained network differs from this config's model "
                     f"({len(flat_source)} vs {len(flat_target)} variables); use the same model and FDS settings")
  leaves = [leaf if "head" in optim.path_str(path) else flat_source[path]
            for path, leaf in jax.tree_util.tree_leaves_with_path(target)]
  return jax.tree.unflatten(jax.tree.structure(target), leaves)


def _restore_other_run(experiment: Experiment, source: ml_collections.ConfigDict, workdir: str) -> dict:
  """The best state of another run, restored onto that run's own abstract state."""
  other = copy.copy(experiment)
  other.config = source
  other.steps_per_epoch = experiment.steps_per_epoch
  other._build_state()
  return other.restore(os.path.join(workdir, "checkpoints"), "best")[0]


# ------------------------------------------------------------------------------------------------
# Public API.


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run saved in its workdir (`config.json`)."""
  with open(os.path.join(workdir, "config.json")) as f:
    return ml_collections.ConfigDict(json.load(f))


def _is_chief() -> bool:
  """Process 0 writes the workdir's files (config, metrics, predictions, reports); orbax writes the
  checkpoints from every process. A multi-process workdir must be on a file system all share."""
  return jax.process_index() == 0


def _save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))


@dataclasses.dataclass
class _Best:
  value: float = float("inf")
  epoch: int = -1
  step: int = -1


def _check_counters(counters: dict, steps_per_epoch: int) -> None:
  bad = int(counters["bad_step"])
  if bad >= 0:
    raise FloatingPointError(
      f"training diverged: the loss is NaN/inf or above {LOSS_LIMIT:g} at step {bad} (epoch "
      f"{bad // steps_per_epoch}); lower the learning rate or check the data")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       stop_after_steps: int | None = None) -> dict:
  """Trains (or resumes) the run in `workdir` and returns its final metrics.

  A config with `variants` trains each variant into `workdir/<name>/` and returns the comparison
  (`train_variants`). `stop_after_steps` simulates a preemption after that many steps of this
  call (tests): the run stops without a final checkpoint, as a killed job would.
  """
  if config.variants:
    return train_variants(config, workdir, stop_after_steps=stop_after_steps)
  os.makedirs(workdir, exist_ok=True)
  experiment = Experiment(config)
  if _is_chief():
    _save_config(config, workdir)
    np.save(os.path.join(workdir, "train_labels.npy"), experiment.bundle.train_labels)
  metric_name = select_metric(config)
  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"), config.checkpoint.max_to_keep)
  writer = writers.MetricWriter(workdir)
  try:
    if ckpt.latest_step() is not None:
      state, meta = experiment.restore(ckpt.directory, "latest")
      start_epoch, best = meta["epoch"], _Best(**meta["best"])
      logging.info("resuming %s from epoch %d (step %d)", workdir, start_epoch, meta["step"])
    else:
      state, start_epoch, best = experiment.fresh_state(), 0, _Best()
    steps_per_epoch = experiment.steps_per_epoch
    total_steps = config.num_epochs * steps_per_epoch
    step, done = start_epoch * steps_per_epoch, 0
    progress = writers.ProgressLogger(total_steps, config.log_every_steps)
    counters = jax.device_put(_zero_counters(), experiment.replicated)
    last = None
    for epoch in range(start_epoch, config.num_epochs):
      epoch_arr = np.int32(epoch)
      for batch in experiment.train_loader(epoch):
        state, counters = experiment.train_step(state, batch, epoch_arr, counters)
        if experiment.sync_every_step:
          jax.block_until_ready(counters)
        step, done = step + 1, done + 1
        if progress.due(step):
          counters = _log_train(experiment, writer, progress, state, counters, step, epoch)
        if stop_after_steps is not None and done >= stop_after_steps:
          return {"stopped_at_step": step}
      if config.fds.enabled and epoch >= config.fds.start_update:
        state = experiment.fds_pass(state, epoch)
      last_epoch = epoch == config.num_epochs - 1
      evaluate_now = (epoch + 1) % config.eval.every_epochs == 0 or last_epoch
      if evaluate_now or (epoch + 1) % config.checkpoint.every_epochs == 0:
        _check_counters(jax.device_get(counters), steps_per_epoch)
      is_best = False
      if evaluate_now:
        metrics, _ = experiment.evaluate_splits(state["model"])
        value = float(_lookup(metrics[config.eval.select_split], metric_name))
        is_best = value < best.value
        if is_best:
          best = _Best(value, epoch, step)
        writer.write_scalars(step, {f"eval/{k}": v for k, v in _flatten(metrics).items()})
        logging.info("epoch %d: %s/%s = %.6g (best %.6g at epoch %d)", epoch, config.eval.select_split,
                     metric_name, value, best.value, best.epoch)
        last = {"epoch": epoch, "step": step, **metrics}
      if evaluate_now or (epoch + 1) % config.checkpoint.every_epochs == 0:
        meta = {"epoch": epoch + 1, "step": step, "data_position": [epoch + 1, 0],
                "best": dataclasses.asdict(best)}
        experiment.save(ckpt, step, state, meta, is_best)
    _check_counters(jax.device_get(counters), steps_per_epoch)
    ckpt.wait()
    if last is None:  # resumed after the final epoch: evaluate the restored last state
      metrics, _ = experiment.evaluate_splits(state["model"])
      last = {"epoch": config.num_epochs - 1, "step": step, **metrics}
  finally:
    ckpt.close()
    writer.close()
  result = _evaluate_experiment(experiment, workdir, "best")
  result["last"] = last
  result["selected_by"] = f"{config.eval.select_split}/{metric_name}"
  _write_json(os.path.join(workdir, "metrics.json"), result)
  return result


def _log_train(experiment: Experiment, writer, progress, state: dict, counters: dict, step: int, epoch: int):
  """Reads the device counters (the only host sync of the loop), logs, and resets them."""
  host = jax.device_get(counters)
  _check_counters(host, experiment.steps_per_epoch)
  n = max(int(host["steps"]), 1)
  scalars = {"train/loss": float(host["loss"]) / n, "train/mse": float(host["mse"]) / n,
             "train/lr": optim.learning_rate_at(experiment.config, experiment.steps_per_epoch, step - 1),
             "train/epoch": epoch}
  sigma = None
  if experiment.balanced:
    sigma = float(jax.device_get(state["model"]["noise_sigma"][...]))
    scalars.update({"train/noise_sigma": sigma, "train/noise_var": sigma ** 2})
  progress.maybe_log(step, epoch=epoch, loss=scalars["train/loss"], sigma=sigma)
  writer.write_scalars(step, scalars)
  return jax.device_put(_zero_counters(), experiment.replicated)


def _write_json(path: str, obj: Any) -> None:
  if not _is_chief():
    return
  writers.write_json(path, obj)


def _evaluate_experiment(experiment: Experiment, workdir: str, which: str | int) -> dict:
  config = experiment.config
  state, meta = experiment.restore(os.path.join(workdir, "checkpoints"), which)
  metrics, preds = experiment.evaluate_splits(state["model"])
  result = {"which": which, "epoch": meta["epoch"] - 1, "step": meta["step"], **metrics}
  if experiment.balanced:
    result["noise_sigma"] = float(jax.device_get(state["model"]["noise_sigma"][...]))
  if not _is_chief():
    return result
  for split, p in preds.items():
    np.savez(os.path.join(workdir, f"predictions_{split}.npz"), preds=p,
             targets=np.stack([np.asarray(experiment.bundle.splits[split][i]["targets"])
                               for i in range(len(experiment.bundle.splits[split]))]))
  for split in config.eval.splits:
    print(f"{workdir} [{which} checkpoint, epoch {result['epoch']}] {split}:\n{format_shot_table(metrics[split])}")
  return result


def evaluate(config: ml_collections.ConfigDict, workdir: str, which: str | int = "best") -> dict:
  """Restores the `which` checkpoint ("best", "latest" or a step) of `workdir`, evaluates every
  eval split, prints the per-shot tables and writes `metrics.json` (`eval_<which>.json`)."""
  if config.variants:
    return {name: evaluate(cfg, os.path.join(workdir, name), which) for name, cfg in variant_configs(config)}
  result = _evaluate_experiment(Experiment(config), workdir, which)
  _write_json(os.path.join(workdir, f"eval_{which}.json"), result)
  return result


def format_shot_table(metrics: dict) -> str:
  """Rows all/many/medium/few (absent groups are skipped) with every metric of the "all" group as a
  column (MAE, MSE, GM for ages; RMSE, ..., δ₃ for depth; + Pearson/Spearman for STS-B) and count."""
  columns = [k for k in metrics.get("all", {}) if k != "count"]
  lines = ["shot    " + "".join(f"{c.upper():>10}" for c in columns) + f"{'count':>9}"]
  fmt = lambda v: f"{v:>10.4f}" if v is not None else f"{'-':>10}"
  for shot in SHOTS:
    if shot in metrics:
      m = metrics[shot]
      lines.append(f"{shot:<8}" + "".join(fmt(m.get(c)) for c in columns) + f"{m.get('count', 0):>9}")
  if "balanced" in metrics:
    b = metrics["balanced"]
    lines.append(f"balanced: bMAE {b['bmae']:.4f}  bMSE {b['bmse']:.4f}")
  return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Variants: one command trains several methods and compares them.


def variant_configs(config: ml_collections.ConfigDict) -> list[tuple[str, ml_collections.ConfigDict]]:
  """(name, config) per entry of `config.variants` (name → nested overrides; unknown keys fail)."""
  out = []
  for name, overrides in config.variants.items():
    cfg = copy.deepcopy(config)
    cfg.variants = ml_collections.ConfigDict()
    try:
      cfg.update(overrides)
    except (KeyError, AttributeError, TypeError) as e:
      raise ValueError(f"variant {name!r} overrides a config field that does not exist or has another "
                       f"type: {e}") from e
    out.append((name, cfg))
  return out


def train_variants(config: ml_collections.ConfigDict, workdir: str, *, stop_after_steps: int | None = None) -> dict:
  """Trains every variant into `workdir/<name>/`, then writes `comparison.json`, `comparison.md`
  and `predictions.png` (test predictions of the best models vs targets) and prints the table of
  `config.report.metrics` on the test split for the best-on-val and the last model (Q14)."""
  results = {}
  variants = variant_configs(config)
  for index, (name, cfg) in enumerate(variants):
    logging.info("training variant %s (%d/%d)", name, index + 1, len(variants))
    with writers.variant_progress(index, len(variants)):
      results[name] = train_and_evaluate(cfg, os.path.join(workdir, name), stop_after_steps=stop_after_steps)
    if "stopped_at_step" in results[name]:
      return results
  if not _is_chief():
    return results
  table = comparison_table(results, config.report.metrics, config.report.split)
  print(table)
  with open(os.path.join(workdir, "comparison.md"), "w") as f:
    f.write(table + "\n")
  _write_json(os.path.join(workdir, "comparison.json"), results)
  plot_predictions(workdir, list(results), config.report.split, os.path.join(workdir, "predictions.png"))
  return results


def comparison_table(results: dict, metric_paths, split: str) -> str:
  """Markdown table: one row per variant, each metric for the best and for the last model."""
  header = ["variant", "best epoch"] + [f"{split} {m} ({kind})" for m in metric_paths for kind in ("best", "last")]
  header.append("σ (best)")
  rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for name, r in results.items():
    cells = [name, str(r["epoch"])]
    for m in metric_paths:
      for kind in (r, r["last"]):
        value = _lookup(kind[split], m)
        cells.append("-" if value is None else f"{value:.6f}")
    cells.append(f"{r['noise_sigma']:.4f}" if "noise_sigma" in r else "-")
    rows.append("| " + " | ".join(cells) + " |")
  return "\n".join(rows)


def plot_predictions(workdir: str, names: list[str], split: str, path: str) -> None:
  """Predictions of each variant's best model against the targets (one panel per target
  dimension; the diagonal is the oracle), next to the training label histogram."""
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt

  loaded = {n: np.load(os.path.join(workdir, n, f"predictions_{split}.npz")) for n in names}
  first = next(iter(loaded.values()))
  targets = first["targets"].reshape(len(first["targets"]), -1)
  dims = targets.shape[1]
  fig, axes = plt.subplots(1, dims + 1, figsize=(5 * (dims + 1), 4.5), squeeze=False)
  for d in range(dims):
    ax = axes[0, d]
    order = np.argsort(targets[:, d])
    lo, hi = targets[:, d].min(), targets[:, d].max()
    ax.plot([lo, hi], [lo, hi], "k--", lw=1.5, label="oracle")
    for n, arrays in loaded.items():
      preds = arrays["preds"].reshape(len(targets), -1)[:, d]
      if len(targets) > 300:
        ax.scatter(targets[order, d], preds[order], s=3, alpha=0.5, label=n)
      else:
        ax.plot(targets[order, d], preds[order], lw=1.2, label=n)
    ax.set_xlabel(f"{split} target" + (f" [{d}]" if dims > 1 else ""))
    ax.set_ylabel("prediction")
    ax.legend(fontsize=7)
  train_labels = np.load(os.path.join(workdir, names[0], "train_labels.npy"))
  axes[0, dims].hist(train_labels.reshape(len(train_labels), -1), bins=40)
  axes[0, dims].set_title("training labels")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
