"""The training objective: a sum of terms, each built from its own config section.

A term is a pure, jit-able function `term(inputs: TermInputs) -> scalar` of what the training step
has (see `TermInputs`). The main term is `config.loss` (`dirjax.losses.build_term`: a regression
loss or a Balanced-MSE estimator; or a `MAIN_TERMS` name, a term that brings its own likelihood, e.g.
UVOTE's Laplace NLL over its heads); `config.regularizers` (label → section, empty by default) adds
more. A section's `name` picks its builder from `TERMS` or is the import path of the user's own,
`"my_project.terms:build"`, called as `build(section, config, bundle) -> term` once at set-up, on
the host (it may fit priors, build tables, read `bundle.train_labels`).

Per-sample weights (`config.reweight`, `dirjax.weighting.sample_weights`) are computed once per
batch and handed to every term; whether a term uses them is its own choice (Balanced MSE does not).
"""

from __future__ import annotations

import importlib
import json
import math
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from dirjax import losses, weighting

# Registered extra terms: name -> "module:builder" (imported only when a config names it).
TERMS: dict[str, str] = {
  "conr": "dirjax.conr:build",
  "dist_loss": "dirjax.dist_loss:build",
  "ordinal_entropy": "dirjax.ordinal_entropy:build",
  "rank_n_contrast": "dirjax.rank_n_contrast:build",
  "ranksim": "dirjax.ranksim:build",
  "uvote": "dirjax.uvote:build",
  "vir": "dirjax.vir:build",
}

# Terms that replace the regression loss: `config.loss.name` may name one (it needs its own head).
MAIN_TERMS = ("uvote", "vir")


class TermInputs(NamedTuple):
  """Everything a term may read, for one (global) training batch."""
  preds: jax.Array              # head output [B, d] or [B, H, W, 1]
  features: jax.Array           # raw encoder features [B, D] or [B, H, W, D]
  calibrated: jax.Array         # features after FDS (the head's input; = features without FDS)
  targets: jax.Array            # [B, d] or [B, H, W, 1]
  weights: jax.Array | None     # per-sample (or per-pixel) weights of `config.reweight`, or None
  mask: jax.Array               # valid rows [B] (padding of the last batch is 0), per element when dense
  epoch: jax.Array              # int32 scalar
  rng: jax.Array                # a key for this step (e.g. sampling), fresh every step
  noise_sigma: jax.Array | None  # Balanced MSE's σ (the model's `noise_sigma`), or None
  batch: dict                   # the whole batch, e.g. a second augmented view of the inputs
  model: Callable[..., Any]     # the model being differentiated: `model(x, targets, epoch) -> Outputs`


Term = Callable[[TermInputs], jax.Array]


def element_mask(batch: dict[str, jax.Array]) -> jax.Array:
  """Row mask `valid` [B], combined with a dense task's per-element `mask` when present."""
  valid = batch["valid"]
  if "mask" not in batch:
    return valid
  element = batch["mask"].astype(bool)
  return element & valid.reshape((-1,) + (1,) * (element.ndim - 1))


def scalar_labels_and_features(term: str, inputs: TermInputs) -> tuple[jax.Array, jax.Array]:
  """(labels [B], features [B, D]) in float32 for a term defined on one scalar label per sample; a clear
  error for dense (per-pixel) or multi-dimensional targets."""
  targets, features = inputs.targets, inputs.features
  if targets.ndim != 2 or targets.shape[-1] != 1 or features.ndim != 2 or features.shape[0] != targets.shape[0]:
    raise ValueError(f"{term} needs one scalar label and one feature vector per sample (targets [B, 1], features "
                     f"[B, D]); got targets {targets.shape} and features {features.shape} (dense tasks such as "
                     "depth are not supported)")
  return targets[:, 0].astype(jnp.float32), features.astype(jnp.float32)


def builder_of(name: str) -> Callable[..., Term]:
  """The builder of a registered term name or of an import path `"package.module:function"`."""
  path = TERMS.get(name, name)
  if not isinstance(path, str) or path.count(":") != 1:
    raise ValueError(f"unknown objective term {name!r}; choose one of {sorted(TERMS)} or give the import "
                     "path of your own builder as 'package.module:function'")
  module_name, function = path.split(":")
  try:
    return getattr(importlib.import_module(module_name), function)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"objective term {name!r}: cannot import {function!r} from {module_name!r} ({e})") from e


class Objective:
  """Σ of the terms of `build`, with the per-sample weights of `config.reweight`."""

  def __init__(self, terms: dict[str, Term], sample_weights: Callable[[dict], jax.Array | None]):
    self.terms = terms
    self.sample_weights = sample_weights

  def __call__(self, model: Any, batch: dict[str, jax.Array], epoch: jax.Array,
               rng: jax.Array) -> tuple[jax.Array, Any]:
    """(total loss, model outputs) of `model` (a `Regressor` in training mode) on `batch`: a pure
    function of the model's variables, so a step rule may differentiate or call it more than once."""
    targets = batch["targets"]
    outputs = model(batch["inputs"], targets=targets, epoch=epoch)
    sigma = None if model.noise_sigma is None else model.noise_sigma[...]
    inputs = TermInputs(outputs.preds, outputs.features, outputs.calibrated, targets, self.sample_weights(batch),
                        element_mask(batch), epoch, rng, sigma, batch, model)
    values = [term(inputs) for term in self.terms.values()]
    total = values[0]
    for value in values[1:]:
      total = total + value
    return total, outputs


# `config.loss.init_noise_sigma_rule` values: "" uses `loss.init_noise_sigma` as given (label units).
SIGMA_RULES = ("", "stage1_val_rmse")


def init_noise_sigma(config: ml_collections.ConfigDict) -> float | None:
  """σ₀ of the model's `noise_sigma`: set when the main loss is a Balanced-MSE estimator.

  With `loss.init_noise_sigma_rule="stage1_val_rmse"` (RRT stage 2) σ₀ is
  `loss.init_noise_sigma_rule_scale` (default 1) × the validation RMSE of the `init_from` run's best
  model, √(val all/mse) from its `metrics.json`: σ is the noise scale of p(y|x) (Ren et al., CVPR 2022,
  Eq. 3), which the stage-1 residuals estimate. The reference sets σ₀ by hand per dataset, 10 years on
  IMDB-WIKI-DIR and 1 m on NYUD2-DIR: 0.85× and 0.68× the vanilla test RMSEs of the DIR paper
  (√138.06 = 11.75 and 1.477); the IMDB-WIKI/AgeDB/NYUD2 configs keep the reference's values, the
  rule is for settings it does not cover (docs/deviations.md rows 77 and 79; `synthetic_images.py:rrt`
  uses the scale 0.5, measurements in docs/reproduction.md).
  """
  if config.loss.name in MAIN_TERMS:
    return None
  sigma = losses.init_noise_sigma(config.loss)
  rule = config.loss.get("init_noise_sigma_rule", "")
  scale = config.loss.get("init_noise_sigma_rule_scale", 1.0)
  if rule not in SIGMA_RULES:
    raise ValueError(f"loss.init_noise_sigma_rule must be one of {SIGMA_RULES}, got {rule!r}")
  if not rule and scale != 1.0:
    raise ValueError(f"loss.init_noise_sigma_rule_scale={scale} scales the value of init_noise_sigma_rule, which "
                     "is ''; set loss.init_noise_sigma itself instead")
  if not scale > 0:
    raise ValueError(f"loss.init_noise_sigma_rule_scale must be > 0, got {scale}")
  if sigma is None or not rule:
    return sigma
  return scale * stage1_val_rmse(config.init_from)


def stage1_val_rmse(workdir: str) -> float:
  """√(val all/mse) of the best model of the finished run in `workdir` (its `metrics.json`)."""
  path = os.path.join(workdir or "", "metrics.json")
  try:
    with open(path) as f:
      mse = json.load(f)["val"]["all"]["mse"]
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f"loss.init_noise_sigma_rule='stage1_val_rmse' needs init_from to be a finished run with "
                     f"val metrics; cannot read val/all/mse from {path!r} ({type(e).__name__}: {e}). Set "
                     "init_from, or set loss.init_noise_sigma by hand and init_noise_sigma_rule=''.") from None
  if not mse > 0:
    raise ValueError(f"{path}: val/all/mse is {mse}; σ₀ = √mse must be > 0 (set loss.init_noise_sigma by hand)")
  return math.sqrt(mse)


def build(config: ml_collections.ConfigDict, bundle: Any) -> Objective:
  """The objective of `config`: the main term `config.loss`, then `config.regularizers` in order."""
  if config.loss.name in MAIN_TERMS:
    terms = {"loss": builder_of(config.loss.name)(config.loss, config, bundle)}
  else:
    terms = {"loss": losses.build_term(config.loss, config, bundle)}
  for label, section in config.get("regularizers", {}).items():
    if label in terms:
      raise ValueError(f"regularizers.{label}: the label {label!r} is taken by the main loss")
    if "name" not in section:
      raise ValueError(f"regularizers.{label} needs a 'name' (one of {sorted(TERMS)} or 'package.module:function')")
    terms[label] = builder_of(section["name"])(section, config, bundle)
  table = weighting.weight_table(config.reweight, bundle)
  if table is not None:  # traced weights cannot be checked inside the step: check the table once
    losses.validate_weights(table, f"reweight.method={config.reweight.method!r} weight table")
  return Objective(terms, weighting.sample_weights(config.reweight, bundle, table))
