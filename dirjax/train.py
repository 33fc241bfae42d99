"""The dirjax trainer: `train_and_evaluate(config, workdir)` and `evaluate(config, workdir)`.

One trainer for every benchmark and method (docs/architecture.md): the model is a
`models.regressor.Regressor` (encoder → FDS → head, σ), the loss an `objective.Objective` (a sum of
terms built from `config.loss` and `config.regularizers`). Per epoch:

1. training steps: ONE `jax.jit` step over the `nnx.split` state (params replicated, the global
   batch sharded over `P("data")`, the state donated); the epoch is a traced int32, the last
   partial batch is padded and masked. Losses that couple rows (Balanced MSE) see the GLOBAL batch
   and BatchNorm computes its statistics over the global batch (the reference's `nn.DataParallel`
   normalises each GPU's sub-batch; ResNets offer `bn_groups` to emulate it);
2. FDS (or VIR PRM) statistics pass (epoch ≥ start_update): the encoder over `bundle.fds_split` in training
   mode, as the reference (BatchNorm uses batch statistics AND updates its running averages;
   dropout is active), accumulating per-bucket moments under jit, then `FDS.update`;
3. every `eval.every_epochs` (and at the last epoch): predictions over the eval splits and
   `bundle.evaluate`; the best checkpoint is selected on `eval.select_split` by
   `eval.select_metric` (default val MAE; `eval.balanced_metric` switches to bMAE / bMSE);
4. checkpoints (model incl. BatchStats, FDSStats and σ, optimizer state, step/epoch, data
   position, best metric) every `checkpoint.every_epochs`, at every evaluation, every
   `checkpoint.every_steps` steps (0: off) and on SIGINT/SIGTERM (`dirjax.interrupts`). Re-running
   the same command resumes from the latest checkpoint, mid-epoch at its data position, and gives
   exactly the uninterrupted run.

A loss that is not finite or exceeds 1e6 (the reference IMDB guard) stops the run with an error
naming the step; it is checked from a device-side flag at every log step and before any
checkpoint, never with a per-step host sync. Deliberate deviations from the reference: σ is saved
with the checkpoints, the synthetic benchmark reports the test metrics of the best-on-val AND of
the last model, everything is seeded.
"""

import contextlib
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
from dirjax import interrupts, losses, models, objective, optim, reporting, sam, sharding, writers
from dirjax.data import pipeline
from dirjax.models import regressor

LOSS_LIMIT = 1e6  # reference IMDB-WIKI `train.py`: "Loss explosion" when loss > 1e6 or NaN


def select_metric(config: ml_collections.ConfigDict) -> str:
  """The validation metric path used for model selection, e.g. "all/mae" or "balanced/bmae"."""
  metric = config.eval.select_metric
  if config.eval.balanced_metric:
    metric = "balanced/b" + metric.split("/")[-1]
  return metric


def check_config(config: ml_collections.ConfigDict) -> None:
  """Fails early on the loop's own settings, naming the offending value; each concept checks its
  section when it is built (data, model, loss and terms, reweight, FDS, optimizer)."""
  data_lib.module_name(config.data.name)  # unknown names fail here, before any work
  models.model_class_of(config.model.name)
  for name in ("num_epochs", "batch_size", "eval_batch_size", "log_every_steps"):
    if int(config[name]) < 1:
      raise ValueError(f"{name} must be >= 1, got {config[name]}")
  for name in ("eval.every_epochs", "checkpoint.every_epochs", "checkpoint.max_to_keep"):
    section, key = name.split(".")
    if int(config[section][key]) < 1:
      raise ValueError(f"{name} must be >= 1, got {config[section][key]}")
  if int(config.checkpoint.get("every_steps", 0)) < 0:
    raise ValueError(f"checkpoint.every_steps must be >= 0 (0: off), got {config.checkpoint.every_steps}")
  if len(config.eval.select_metric.split("/")) != 2:
    raise ValueError(f"eval.select_metric must look like 'all/mae', got {config.eval.select_metric!r}")
  if config.eval.select_split not in config.eval.splits:
    raise ValueError(f"eval.select_split {config.eval.select_split!r} is not in eval.splits {config.eval.splits}")
  if config.init_from and not os.path.isfile(os.path.join(config.init_from, "config.json")):
    raise ValueError(f"init_from={config.init_from!r} must be the workdir of a finished dirjax run "
                     "(with config.json and checkpoints/)")


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run saved in its workdir (`config.json`)."""
  path = os.path.join(workdir, "config.json")
  try:
    with open(path) as f:
      return ml_collections.ConfigDict(json.load(f))
  except (OSError, ValueError) as e:
    raise ValueError(f"cannot read the run's config {path} ({type(e).__name__}: {e}); is {workdir} the "
                     "workdir of a dirjax run?") from None


def create_state(config: ml_collections.ConfigDict, bundle: data_lib.DataBundle,
                 steps_per_epoch: int) -> tuple[regressor.Regressor, nnx.Optimizer]:
  """The seeded model (training mode) and its optimizer for `config`."""
  model = regressor.build(config, dataset_buckets=bundle.fds_buckets,
                          init_noise_sigma=objective.init_noise_sigma(config))
  return model, nnx.Optimizer(model, optim.build_optimizer(config, steps_per_epoch), wrt=nnx.Param)


def abstract_state(config: ml_collections.ConfigDict, bundle: data_lib.DataBundle, steps_per_epoch: int,
                   placement: jax.sharding.Sharding) -> tuple[dict, dict]:
  """(graphdefs, abstract state) of the run `config` describes, without computing a value:
  `{"model": ..., "optimizer": ...}` each, the state as `jax.ShapeDtypeStruct`s on `placement`."""
  model, optimizer = nnx.eval_shape(lambda: create_state(config, bundle, steps_per_epoch))
  (graphdef, model_state), (opt_graphdef, opt_state) = nnx.split(model), nnx.split(optimizer)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=placement),
                          {"model": model_state, "optimizer": opt_state})
  return {"model": graphdef, "optimizer": opt_graphdef}, abstract


def restore(directory: str, abstract: dict, which: str | int) -> tuple[dict, dict]:
  """(state, meta) of checkpoint `which` ("best", "latest" or a step) under `directory`."""
  with checkpoint_lib.Checkpointer(directory) as ckpt:
    return ckpt.restore(abstract, which)


def _zero_counters() -> dict[str, jax.Array]:
  return {"loss": jnp.zeros((), jnp.float32), "mse": jnp.zeros((), jnp.float32),
          "steps": jnp.zeros((), jnp.int32), "bad_step": jnp.full((), -1, jnp.int32)}


class Experiment:
  """Everything derived from a config. `state = {"model": nnx.State, "optimizer": nnx.State}`."""

  def __init__(self, config: ml_collections.ConfigDict):
    check_config(config)
    self.config = config
    self.mesh = sharding.make_mesh(config.mesh.shape, config.mesh.axes)
    self.bundle = bundle = data_lib.get_data(config.data, seed=config.seed)
    sample = bundle.splits["train"][0]["inputs"]
    models.check_inputs(config.model, np.asarray(sample, np.float32) if bundle.device_transform else sample)
    losses.validate_targets(bundle.train_labels, "training labels")
    on_device = bundle.device_transform is not None  # batches carry their positions for device augmentation
    workers = int(config.get("input_workers", 0))  # grain worker processes per loader (0: read in this process)
    ahead = int(config.get("prefetch_to_device", 0))  # batches placed on the devices ahead of the step (0: off)
    self.train_loader = pipeline.Loader(
      bundle.splits["train"], batch_size=config.batch_size, mesh=self.mesh, shuffle=True, seed=config.seed,
      augment=bundle.train_augment, num_threads=config.input_threads, positions=on_device,
      num_workers=workers, two_views=config.data.get("two_views", False), prefetch=ahead)
    self.eval_loaders = {
      split: pipeline.Loader(bundle.splits[split], batch_size=config.eval_batch_size, mesh=self.mesh,
                             num_threads=config.input_threads, num_workers=workers, prefetch=ahead)
      for split in config.eval.splits}
    self.fds_augment_seed = None
    self.statistics_start = regressor.statistics_start(config)
    if self.statistics_start is not None:
      on_train = bundle.fds_split == "train"
      self.fds_loader = pipeline.Loader(
        bundle.splits[bundle.fds_split], batch_size=config.batch_size, mesh=self.mesh, shuffle=on_train,
        seed=config.seed + 1, augment=bundle.train_augment if on_train else None, num_threads=config.input_threads,
        positions=on_device and on_train, num_workers=workers, prefetch=ahead)
      self.fds_augment_seed = config.seed + 1 if on_train else None
    self.steps_per_epoch = self.train_loader.steps_per_epoch
    self.objective = objective.build(config, bundle)
    self.sync_every_step = sharding.needs_step_sync(self.mesh)
    self.replicated = sharding.replicated(self.mesh)
    graphdefs, self.abstract_state = abstract_state(config, bundle, self.steps_per_epoch, self.replicated)
    self.graphdef, self.opt_graphdef = graphdefs["model"], graphdefs["optimizer"]
    self._build_steps()

  def init_state(self) -> dict:
    """Seeded initial state, created eagerly (compiling the initialisers of a ResNet under jit
    costs tens of seconds on CPU) and replicated; every process computes the same values."""
    model, optimizer = create_state(self.config, self.bundle, self.steps_per_epoch)
    return jax.device_put({"model": nnx.state(model), "optimizer": nnx.state(optimizer)}, self.replicated)

  def fresh_state(self) -> dict:
    """Initial state; with `init_from` (RRT stage 2) every network variable whose path does not
    match `train_only` (backbone, BatchNorm and FDS statistics) comes from the best checkpoint of
    that run; the matching ones (e.g. the `head`) and σ keep their fresh initialisation, or, with
    `config.rrt_reinit=False`, the head too comes from that run and is fine-tuned (docs/deviations.md row 78)."""
    state = self.init_state()
    if not self.config.init_from:
      return state
    source = load_config(self.config.init_from)
    graphdefs, abstract = abstract_state(source, self.bundle, self.steps_per_epoch, self.replicated)
    source_state, _ = restore(os.path.join(self.config.init_from, "checkpoints"), abstract, "best")
    model = nnx.merge(self.graphdef, state["model"])
    fresh = self.config.train_only if self.config.get("rrt_reinit", True) else ""
    model.load_network(nnx.merge(graphdefs["model"], source_state["model"]), fresh)
    return {"model": nnx.state(model), "optimizer": state["optimizer"]}

  def restore(self, directory: str, which: str | int) -> tuple[dict, dict]:
    """(state, meta) of checkpoint `which` ("best", "latest" or a step) of this run."""
    return restore(directory, self.abstract_state, which)

  def _build_steps(self) -> None:
    graphdef, opt_graphdef, loss = self.graphdef, self.opt_graphdef, self.objective
    base_key = jax.random.key(self.config.seed)
    device_transform = self.bundle.device_transform or (lambda batch, augment_seed, epoch: batch)
    fds_augment_seed = self.fds_augment_seed
    rho = sam.check_rho(self.config.optimizer.get("sam_rho", 0.0))
    labels = optim.param_labels(self.config)
    trainable = lambda grads: jax.tree.map(lambda label: label != "frozen", labels(grads))

    def train_step(state, batch, epoch, counters):
      batch = device_transform(batch, self.config.seed, epoch)
      model = nnx.merge(graphdef, state["model"])
      optimizer = nnx.merge(opt_graphdef, state["optimizer"])
      step = optimizer.step[...].astype(jnp.int32)
      rng = jax.random.fold_in(base_key, step)
      (value, outputs), grads = sam.value_and_grad(lambda m: loss(m, batch, epoch, rng), model, rho, trainable)
      optimizer.update(model, grads)
      ok = jnp.isfinite(value) & (value <= LOSS_LIMIT)
      mse = losses.mse(jax.lax.stop_gradient(outputs.preds), batch["targets"], mask=objective.element_mask(batch))
      counters = {
        "loss": counters["loss"] + value, "steps": counters["steps"] + 1, "mse": counters["mse"] + mse,
        "bad_step": jnp.where((counters["bad_step"] < 0) & ~ok, step, counters["bad_step"])}
      return {"model": nnx.state(model), "optimizer": nnx.state(optimizer)}, counters

    def predict_step(model_state, batch):
      batch = device_transform(batch, None, 0)
      model = nnx.merge(graphdef, model_state)
      model.eval()
      outputs = model(batch["inputs"])
      if outputs.uncertainty is None:
        return {"preds": outputs.preds}
      return {"preds": outputs.preds, "uncertainty": outputs.uncertainty}

    def fds_step(model_state, sums, batch, epoch):
      batch = device_transform(batch, fds_augment_seed, epoch)
      model = nnx.merge(graphdef, model_state)  # training mode: BN batch statistics, dropout on
      features = model.smoothing_features(batch["inputs"])
      return nnx.state(model), model.smoothing.add_batch(sums, features, batch["targets"], objective.element_mask(batch))

    def fds_update(model_state, sums, epoch):
      model = nnx.merge(graphdef, model_state)
      model.smoothing.update(sums, epoch)
      return nnx.state(model)

    repl = self.replicated
    self.train_step = jax.jit(train_step, donate_argnums=(0, 3), out_shardings=(repl, repl))
    self.predict_step = jax.jit(predict_step)
    self.fds_step = jax.jit(fds_step, donate_argnums=(0, 1), out_shardings=(repl, repl))
    self.fds_update = jax.jit(fds_update, donate_argnums=(0,), out_shardings=repl)

  def predictions(self, model_state, split: str) -> dict[str, np.ndarray]:
    """{"preds"} of `split` in order, plus the predictive std "uncertainty" of an uncertainty head (UVOTE)."""
    return pipeline.predict(functools.partial(self.predict_step, model_state), self.eval_loaders[split])

  def evaluate_splits(self, model_state) -> tuple[dict, dict]:
    """(metrics, predictions as `predictions` gives them) per eval split."""
    outputs = {split: self.predictions(model_state, split) for split in self.config.eval.splits}
    return {split: self.bundle.evaluate(split, o["preds"]) for split, o in outputs.items()}, outputs

  def fds_pass(self, state: dict, epoch: int) -> dict:
    """End-of-epoch FDS statistics over `bundle.fds_split` and `FDS.update` (reference order)."""
    model_state = state["model"]
    sums = jax.device_put(nnx.merge(self.graphdef, model_state).smoothing.zero_sums(), self.replicated)
    with contextlib.closing(self.fds_loader(epoch)) as batches:
      for batch in batches:
        model_state, sums = self.fds_step(model_state, sums, batch, np.int32(epoch))
        if self.sync_every_step:
          jax.block_until_ready(sums)
    return {"model": self.fds_update(model_state, sums, np.int32(epoch)), "optimizer": state["optimizer"]}


def _is_chief() -> bool:
  """Process 0 writes the workdir's files (config, metrics, predictions, reports); orbax writes the
  checkpoints from every process. A multi-process workdir must be on a file system all share."""
  return jax.process_index() == 0


def _save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  writers.write_text(os.path.join(workdir, "config.json"), config.to_json_best_effort(indent=2))


def _open_run(config: ml_collections.ConfigDict, workdir: str, experiment: "Experiment") -> checkpoint_lib.Checkpointer:
  """The run's checkpointer, after checking that `workdir`'s checkpoints belong to this run
  (`Checkpointer.check_resume`: a result-changing difference stops before anything is written) and
  fit its state; only then are `config.json` (and `config_changes.json`, the record of allowed
  changes) written."""
  identity = checkpoint_lib.run_identity(config, steps_per_epoch=experiment.steps_per_epoch,
                                         train_size=len(experiment.bundle.splits["train"]), mesh=experiment.mesh)
  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"), config.checkpoint.max_to_keep,
                                     identity=identity)
  try:
    changes = ckpt.check_resume(allow_change=config.checkpoint.get("allow_config_change", False))
    if ckpt.latest_step() is not None:
      ckpt.check_target(experiment.abstract_state)
  except BaseException:
    ckpt.close()
    raise
  if _is_chief():
    os.makedirs(workdir, exist_ok=True)
    if changes:
      logging.warning("resuming %s with changed config fields: %s", workdir, [c[0] for c in changes])
      history_path = os.path.join(workdir, "config_changes.json")
      history = []
      if os.path.isfile(history_path):
        with open(history_path) as f:
          history = json.load(f)
      history.append({"resumed_at_step": ckpt.latest_step(),
                      "changes": [{"field": k, "old": old, "new": new} for k, old, new in changes]})
      writers.write_json(history_path, history)
    _save_config(config, workdir)
    writers.save_npy(os.path.join(workdir, "train_labels.npy"), experiment.bundle.train_labels)
  return ckpt


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
  (`reporting.train_variants`). `stop_after_steps` simulates a preemption after that many steps of
  this call (tests): the run stops without a final checkpoint, as a killed job would. SIGINT and
  SIGTERM (`dirjax.interrupts`) finish the current step, save it and raise `interrupts.Interrupted`.
  """
  with interrupts.catch_signals():
    if config.variants:
      return reporting.train_variants(config, workdir, train_and_evaluate, stop_after_steps=stop_after_steps)
    return _train_one(config, workdir, stop_after_steps)


def _train_one(config: ml_collections.ConfigDict, workdir: str, stop_after_steps: int | None) -> dict:
  if _is_chief():
    writers.check_writable(workdir, "workdir")
  experiment = Experiment(config)
  ckpt = _open_run(config, workdir, experiment)
  metric_name = select_metric(config)
  writer = writers.MetricWriter(workdir)
  steps_per_epoch = experiment.steps_per_epoch
  every_steps = config.checkpoint.get("every_steps", 0)
  try:
    if ckpt.latest_step() is not None:
      state, meta = experiment.restore(ckpt.directory, "latest")
      (start_epoch, start_batch), step, best = meta["data_position"], meta["step"], _Best(**meta["best"])
      logging.info("resuming %s from epoch %d, batch %d (step %d)", workdir, start_epoch, start_batch, step)
    else:
      state, start_epoch, start_batch, step, best = experiment.fresh_state(), 0, 0, 0, _Best()
    total_steps = config.num_epochs * steps_per_epoch
    done = 0
    progress = writers.ProgressLogger(total_steps, config.log_every_steps)
    counters = jax.device_put(_zero_counters(), experiment.replicated)
    last = None
    for epoch in range(start_epoch, config.num_epochs):
      epoch_arr = np.int32(epoch)
      first = start_batch if epoch == start_epoch else 0
      # closing: a stop, an exception or a return mid-epoch shuts the reader (and the prefetch thread) down now
      with contextlib.closing(experiment.train_loader(epoch, first)) as batches:
        for batch_index, batch in enumerate(batches, first + 1):
          state, counters = experiment.train_step(state, batch, epoch_arr, counters)
          if experiment.sync_every_step:
            jax.block_until_ready(counters)
          step, done = step + 1, done + 1
          if progress.due(step):
            counters = _log_train(experiment, writer, progress, state, counters, step, epoch)
          # Mid-epoch checkpoint (the last batch's waits for the FDS pass and evaluation below).
          if batch_index < steps_per_epoch and (interrupts.requested() or _due(step, every_steps)):
            _save(ckpt, state, counters, step, (epoch, batch_index), best, steps_per_epoch)
            _stop_if_requested(step, ckpt.directory)
          if stop_after_steps is not None and done >= stop_after_steps:
            return {"stopped_at_step": step}
      if experiment.statistics_start is not None and epoch >= experiment.statistics_start:
        state = experiment.fds_pass(state, epoch)
      last_epoch = epoch == config.num_epochs - 1
      evaluate_now = (epoch + 1) % config.eval.every_epochs == 0 or last_epoch
      if evaluate_now:
        _check_counters(jax.device_get(counters), steps_per_epoch)
      is_best = False
      if evaluate_now:
        metrics, last_preds = experiment.evaluate_splits(state["model"])
        value = float(reporting.lookup(metrics[config.eval.select_split], metric_name))
        is_best = value < best.value
        if is_best:
          best = _Best(value, epoch, step)
        writer.write_scalars(step, {"eval": metrics})
        logging.info("epoch %d: %s/%s = %.6g (best %.6g at epoch %d)", epoch, config.eval.select_split,
                     metric_name, value, best.value, best.epoch)
        last = {"epoch": epoch, "step": step, **metrics}
      if (evaluate_now or (epoch + 1) % config.checkpoint.every_epochs == 0 or _due(step, every_steps)
          or interrupts.requested()):
        _save(ckpt, state, counters, step, (epoch + 1, 0), best, steps_per_epoch, is_best=is_best)
      _stop_if_requested(step, ckpt.directory)
    _check_counters(jax.device_get(counters), steps_per_epoch)
    ckpt.wait()
    if last is None:  # resumed after the final epoch: evaluate the restored last state
      metrics, last_preds = experiment.evaluate_splits(state["model"])
      last = {"epoch": config.num_epochs - 1, "step": step, **metrics}
  finally:
    ckpt.close()  # waits for the pending save: an `Interrupted` run exits with its checkpoint committed
    writer.close()
  result, best_preds = _evaluate_experiment(experiment, workdir, "best")
  result["last"] = last
  result["selected_by"] = f"{config.eval.select_split}/{metric_name}"
  _write_json(os.path.join(workdir, "metrics.json"), result)
  _plot_errors(experiment, workdir, {f"best-on-val (epoch {result['epoch']})": best_preds,
                                     f"last (epoch {last['epoch']})": last_preds})
  _stop_if_requested(step, ckpt.directory)  # a signal during the final evaluation: the run is complete
  return result


def _due(step: int, every_steps: int) -> bool:
  return every_steps > 0 and step % every_steps == 0


def _save(ckpt: checkpoint_lib.Checkpointer, state: dict, counters: dict, step: int, position: tuple[int, int],
          best: _Best, steps_per_epoch: int, *, is_best: bool = False) -> None:
  """Checkpoint of `step`; `position = (epoch, batch)` is where the next step reads (`Loader(epoch, batch)`),
  `meta["epoch"]` the number of completed epochs."""
  _check_counters(jax.device_get(counters), steps_per_epoch)
  meta = {"epoch": position[0], "step": step, "data_position": list(position), "best": dataclasses.asdict(best)}
  ckpt.save(step, state, meta, is_best=is_best)


def _stop_if_requested(step: int, directory: str) -> None:
  signum = interrupts.requested()
  if signum is not None:
    raise interrupts.Interrupted(signum, step, directory)


def _log_train(experiment: Experiment, writer, progress, state: dict, counters: dict, step: int, epoch: int):
  """Reads the device counters (the only host sync of the loop), logs, and resets them."""
  host = jax.device_get(counters)
  _check_counters(host, experiment.steps_per_epoch)
  n = max(int(host["steps"]), 1)
  scalars = {"train/loss": float(host["loss"]) / n, "train/mse": float(host["mse"]) / n,
             "train/lr": optim.learning_rate_at(experiment.config, experiment.steps_per_epoch, step - 1),
             "train/epoch": epoch}
  sigma = regressor.sigma_value(state["model"])
  if sigma is not None:
    scalars.update({"train/noise_sigma": sigma, "train/noise_var": sigma ** 2})
  progress.maybe_log(step, epoch=epoch, loss=scalars["train/loss"], sigma=sigma)
  writer.write_scalars(step, scalars)
  return jax.device_put(_zero_counters(), experiment.replicated)


def _write_json(path: str, obj: Any) -> None:
  if _is_chief():
    writers.write_json(path, obj)


def _plot_errors(experiment: Experiment, workdir: str, preds: dict[str, dict]) -> None:
  """`errors_<split>.png` of `config.report.split` (scalar targets): error per label bin of each named
  model against the training-label density (`reporting.plot_label_errors`)."""
  split = experiment.config.report.split
  if _is_chief() and all(split in p for p in preds.values()):
    reporting.plot_label_errors(os.path.join(workdir, f"errors_{split}.png"), split, experiment.bundle.targets(split),
                                {name: p[split]["preds"] for name, p in preds.items()}, experiment.bundle.train_labels)


def _evaluate_experiment(experiment: Experiment, workdir: str, which: str | int) -> tuple[dict, dict]:
  config = experiment.config
  state, meta = experiment.restore(os.path.join(workdir, "checkpoints"), which)
  metrics, preds = experiment.evaluate_splits(state["model"])
  result = {"which": which, "epoch": meta["epoch"] - 1, "step": meta["step"], **metrics}
  sigma = regressor.sigma_value(state["model"])
  if sigma is not None:
    result["noise_sigma"] = sigma
  if not _is_chief():
    return result, preds
  for split, arrays in preds.items():
    writers.save_npz(os.path.join(workdir, f"predictions_{split}.npz"), **arrays,
                     targets=experiment.bundle.targets(split))
  for split in config.eval.splits:
    table = reporting.format_shot_table(metrics[split])
    print(f"{workdir} [{which} checkpoint, epoch {result['epoch']}] {split}:\n{table}")
  return result, preds


def evaluate(config: ml_collections.ConfigDict, workdir: str, which: str | int = "best") -> dict:
  """Restores the `which` checkpoint ("best", "latest" or a step) of `workdir`, evaluates every
  eval split, prints the per-shot tables and writes `metrics.json` (`eval_<which>.json`)."""
  if config.variants:
    return {name: evaluate(cfg, os.path.join(workdir, name), which)
            for name, cfg in reporting.variant_configs(config)}
  checkpoint_lib.require_checkpoints(os.path.join(workdir, "checkpoints"))
  if _is_chief():
    writers.check_writable(workdir, "workdir (evaluation writes predictions_<split>.npz and eval_<which>.json)")
  experiment = Experiment(config)
  result, preds = _evaluate_experiment(experiment, workdir, which)
  _write_json(os.path.join(workdir, f"eval_{which}.json"), result)
  _plot_errors(experiment, workdir, {f"{which} checkpoint (epoch {result['epoch']})": preds})
  return result
