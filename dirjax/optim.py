"""Optimizer builder: epoch-based LR schedules, the Balanced-MSE σ parameter group, freezing.

Reference behaviour (``adjust_learning_rate`` in ``utils.py`` / ``nyud2-dir/train.py`` of YyzHarry/imbalanced-regression
and jiawei-ren/BalancedMSE; the σ group of ``synthetic_benchmark/main_1d.py``):

* The LR is set at the start of each epoch: ``multistep`` gives ``lr·decay^(#milestones ≤ epoch)``,
  ``cosine`` is PyTorch's ``CosineAnnealingLR(T_max=num_epochs)`` stepped once per epoch,
  ``lr·(1 + cos(π·epoch/num_epochs))/2``. We convert steps to epochs with ``steps_per_epoch``.
* ``sgd`` and ``adam`` apply weight decay as coupled L2 (``grad + wd·param`` before the update rule),
  as PyTorch's SGD/Adam do; ``adamw`` decouples it.
* σ (the parameter at path ``noise_sigma``: ``Regressor.noise_sigma``) gets its own group with the same optimizer
  family and hyper-parameters but ``config.loss.sigma_lr``; its LR is either constant
  (``sigma_schedule="constant"``: IMDB/NYUD2 skip the σ group when adjusting the LR) or scaled by the
  main schedule's factor (``"main"``: the synthetic benchmark's cosine touches every group; docs/deviations.md R25).
  ``fix_noise_sigma`` freezes it.
* ``config.train_only`` (regex, ``""`` = everything) freezes every other non-σ parameter, e.g. RRT
  trains only ``"head"``; the same regex says what RRT re-initialises
  (``Regressor.load_network``). σ follows its own rules regardless of ``train_only``.
* ``config.optimizer.lr_scales`` (``{path regex: factor}``, default none) gives the matching non-σ parameters
  their own group: the main family and schedule at ``factor·lr``, e.g. UVOTE's log-scale layers train at
  0.1·lr (SherryJYC/UVOTE ``agedb-dir/train_gradual.py`` L207–215). The first matching regex wins.

Gradient clipping (``grad_clip_norm``, STS-B 5.0) applies to the global norm of the main group's
gradients, i.e. of the parameters the reference passes to ``clip_grad_norm_``.
Parameters are labelled by *path* because ``nnx.Optimizer`` calls ``tx.init`` on an ``nnx.State``
and ``tx.update`` on pure dicts (flax's `nnx.Optimizer.update`). Frozen parameters keep no optimizer state.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from ml_collections import ConfigDict

OPTIMIZERS = ("adam", "sgd", "adamw")
SCHEDULES = ("constant", "multistep", "cosine")
SIGMA_SCHEDULES = ("constant", "main")
SIGMA_PATH = "noise_sigma"  # `dirjax.models.regressor.Regressor.noise_sigma`


def lr_factor(config: ConfigDict, epoch: jax.Array | int) -> jax.Array:
  """The main schedule's multiplier of ``config.optimizer.lr`` at (integer) ``epoch``."""
  opt = config.optimizer
  epoch = jnp.asarray(epoch, jnp.float32)
  if opt.schedule == "constant":
    return jnp.ones_like(epoch)
  if opt.schedule == "multistep":
    passed = jnp.sum(epoch >= jnp.asarray(opt.milestones, jnp.float32))
    return jnp.asarray(opt.decay_factor, jnp.float32) ** passed
  if opt.schedule == "cosine":
    return 0.5 * (1.0 + jnp.cos(math.pi * epoch / config.num_epochs))
  raise ValueError(f"unknown schedule {opt.schedule!r}; choose one of {SCHEDULES}")


def _schedule(config: ConfigDict, steps_per_epoch: int, base_lr: float, annealed: bool) -> optax.Schedule:
  def schedule(count: jax.Array) -> jax.Array:
    if not annealed:
      return jnp.asarray(base_lr, jnp.float32)
    return base_lr * lr_factor(config, count // steps_per_epoch)
  return schedule


def learning_rate_at(config: ConfigDict, steps_per_epoch: int, step: int) -> float:
  """The main group's learning rate used by optimizer step ``step`` (0-based), for logging."""
  return float(config.optimizer.lr * lr_factor(config, step // steps_per_epoch))


def _family(opt: ConfigDict, learning_rate: optax.Schedule) -> optax.GradientTransformation:
  """One PyTorch-equivalent update rule (defaults β=(0.9, 0.999), eps=1e-8 as torch)."""
  wd = opt.get("weight_decay", 0.0) or 0.0
  if opt.name == "sgd":
    rule = [optax.add_decayed_weights(wd), optax.trace(decay=opt.momentum)]
  elif opt.name == "adam":
    rule = [optax.add_decayed_weights(wd), optax.scale_by_adam()]
  elif opt.name == "adamw":
    rule = [optax.scale_by_adam(), optax.add_decayed_weights(wd)]
  else:
    raise ValueError(f"unknown optimizer {opt.name!r}; choose one of {OPTIMIZERS}")
  return optax.chain(*rule, optax.scale_by_learning_rate(learning_rate))


def path_str(path: tuple[Any, ...]) -> str:
  """``(DictKey('blocks'), DictKey(0), DictKey('kernel'), GetAttrKey('value'))`` → ``"blocks/0/kernel"``."""
  parts = []
  for key in path:
    if isinstance(key, jax.tree_util.DictKey):
      parts.append(str(key.key))
    elif isinstance(key, jax.tree_util.SequenceKey):
      parts.append(str(key.idx))
    elif isinstance(key, jax.tree_util.GetAttrKey) and key.name != "value":
      parts.append(key.name)
  return "/".join(parts)


def lr_scales(config: ConfigDict) -> dict[str, float]:
  """``config.optimizer.lr_scales`` checked: {path regex: positive factor of the main LR}."""
  scales = dict(config.optimizer.get("lr_scales", None) or {})
  for pattern, factor in scales.items():
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
      raise ValueError(f"optimizer.lr_scales[{pattern!r}] must be a positive number, got {factor!r}")
  return {pattern: float(factor) for pattern, factor in scales.items()}


def param_labels(config: ConfigDict) -> Callable[[Any], Any]:
  """Returns ``params -> pytree of "main" | "sigma" | "frozen" | "scaled:<regex>"`` labelled by parameter path."""
  train_only = config.get("train_only", "") or ""
  fix_sigma = config.loss.get("fix_noise_sigma", False)
  scaled = list(lr_scales(config))

  def label(path: str) -> str:
    if path == SIGMA_PATH:
      return "frozen" if fix_sigma else "sigma"
    if train_only and not re.search(train_only, path):
      return "frozen"
    return next((f"scaled:{p}" for p in scaled if re.search(p, path)), "main")

  def labels(params: Any) -> Any:
    tree = jax.tree_util.tree_map_with_path(lambda p, _: label(path_str(p)), params)
    if train_only and "main" not in jax.tree.leaves(tree):
      paths = [path_str(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
      raise ValueError(f"train_only={train_only!r} matches no parameter; paths are {paths}")
    unused = [p for p in scaled if f"scaled:{p}" not in jax.tree.leaves(tree)]
    if unused:
      paths = [path_str(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
      raise ValueError(f"optimizer.lr_scales regex {unused} matches no trainable parameter; paths are {paths}")
    return tree

  return labels


def build_optimizer(config: ConfigDict, steps_per_epoch: int) -> optax.GradientTransformation:
  """The optax transformation for ``nnx.Optimizer(model, tx, wrt=nnx.Param)`` (see module doc)."""
  opt = config.optimizer
  if steps_per_epoch < 1:
    raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
  if opt.schedule not in SCHEDULES:
    raise ValueError(f"unknown schedule {opt.schedule!r}; choose one of {SCHEDULES}")
  sigma_schedule = config.loss.get("sigma_schedule", "constant")
  if sigma_schedule not in SIGMA_SCHEDULES:
    raise ValueError(f"unknown sigma_schedule {sigma_schedule!r}; choose one of {SIGMA_SCHEDULES}")
  clip = opt.get("grad_clip_norm", None)
  if clip is not None and clip <= 0:
    raise ValueError(f"grad_clip_norm must be positive or None, got {clip}")

  main = _family(opt, _schedule(config, steps_per_epoch, opt.lr, annealed=True))
  if clip is not None:
    main = optax.chain(optax.clip_by_global_norm(clip), main)
  sigma_lr = config.loss.get("sigma_lr", 1e-2)
  sigma = _family(opt, _schedule(config, steps_per_epoch, sigma_lr, annealed=sigma_schedule == "main"))
  scaled = {f"scaled:{pattern}": _family(opt, _schedule(config, steps_per_epoch, factor * opt.lr, annealed=True))
            for pattern, factor in lr_scales(config).items()}
  return optax.partition(
    {"main": main, "sigma": sigma, "frozen": optax.set_to_zero(), **scaled}, param_labels(config))
