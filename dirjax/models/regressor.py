"""The wrapper every run trains: encoder → (FDS) → head, plus σ for Balanced MSE.

`Regressor.__call__` returns `Outputs(preds, features, calibrated, uncertainty)`: `features` are the encoder's
raw features and `calibrated` the ones the head saw (FDS-calibrated when FDS is on and the model is
in training mode, else the same array). The FDS statistics pass reads the raw features: the
reference (IMDB/AgeDB/STS-B) calibrates its feature tensor in place and so collects statistics of
already-smoothed features; NYUD2's code and the paper's README use raw ones (docs/deviations.md).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from dirjax import fds as fds_lib
from dirjax import uvote, vir
from dirjax.models import get_model


class Outputs(NamedTuple):
  preds: jax.Array       # head output: [B, d] or [B, H, W, 1]
  features: jax.Array    # raw encoder features [B, D] or [B, H, W, D]
  calibrated: jax.Array  # what the head saw (FDS-calibrated in training), same shape as features
  uncertainty: jax.Array | None = None  # predictive std of an uncertainty head (UVOTE, VIR), else None


class NoiseSigma(nnx.Param):
  """Balanced MSE's learnable noise scale σ (v = σ²): a raw scalar without positivity constraint,
  like the reference's `noise_sigma`; trained in its own optimizer group (`dirjax.optim`)."""


class Regressor(nnx.Module):
  """encoder → optional `FDS` → head; `noise_sigma` is a `NoiseSigma` scalar or None.

  The head is built by `encoder.make_head` (the encoder declares what its features need) right
  after the encoder from the same `rngs`, so parameters are initialised as when the head lived
  inside the model; `head` replaces it (`build_head`: an uncertainty head such as UVOTE's). A head
  returns predictions, or a pair (predictions, predictive std).
  """

  def __init__(self, encoder: nnx.Module, *, rngs: nnx.Rngs, fds: fds_lib.FDS | None = None,
               init_noise_sigma: float | None = None, head: nnx.Module | None = None):
    if not callable(getattr(encoder, "make_head", None)):
      raise TypeError(f"{type(encoder).__name__} is not an encoder: subclass dirjax.models.base.Encoder "
                      "(features from __call__, `feature_dim`, optional `make_head`)")
    self.encoder = encoder
    self.head = encoder.make_head(rngs=rngs) if head is None else head
    self.fds = fds
    self.noise_sigma = None if init_noise_sigma is None else NoiseSigma(jnp.asarray(init_noise_sigma, jnp.float32))

  def __call__(self, x: jax.Array, targets: jax.Array | None = None, epoch: Any = None) -> Outputs:
    features = self.encoder(x)
    calibrated = features
    if self.fds is not None and not self.fds.deterministic:
      if targets is None or epoch is None:
        raise ValueError("a model with FDS needs `targets` and `epoch` in training mode")
      calibrated = self.fds(features, targets, epoch)
    preds = self.head(calibrated)
    if isinstance(preds, tuple):
      return Outputs(preds[0], features, calibrated, preds[1])
    return Outputs(preds, features, calibrated)

  @property
  def smoothing(self) -> fds_lib.FDS | None:
    """The layer the end-of-epoch statistics pass updates: FDS, or the PRM of VIR's head; None without."""
    return self.fds if self.fds is not None else getattr(self.head, "prm", None)

  def smoothing_features(self, x: jax.Array) -> jax.Array:
    """What `smoothing` tracks for inputs x: the raw encoder features (FDS), or VIR's latent [μ | v]."""
    features = self.encoder(x)
    return features if self.fds is not None else self.head.latent(features)

  def load_network(self, source: Regressor, fresh: str) -> None:
    """Copies `source`'s network variables (encoder, FDS statistics, head) into this model except
    those whose path matches the regex `fresh`, which keep their new initialisation (RRT re-trains
    them: `config.train_only`; "" copies everything). σ belongs to the objective and is never copied."""
    network = nnx.Not(NoiseSigma)
    mine, theirs = nnx.state(self, network), nnx.state(source, network)
    flat_mine = dict(nnx.to_flat_state(mine))
    flat_theirs = dict(nnx.to_flat_state(theirs))
    if flat_mine.keys() != flat_theirs.keys():
      raise ValueError("init_from: the pretrained network differs from this config's model "
                       f"({len(flat_theirs)} vs {len(flat_mine)} variables); use the same model and FDS settings")
    keep_fresh = lambda path: bool(fresh) and re.search(fresh, "/".join(map(str, path))) is not None
    copied = {path: var for path, var in flat_theirs.items() if not keep_fresh(path)}
    nnx.update(self, nnx.from_flat_state(copied))


def build(config: ml_collections.ConfigDict, *, dataset_buckets: dict, init_noise_sigma: float | None) -> Regressor:
  """The run's `Regressor` from `config.model` (encoder), `config.fds` (+ the dataset's FDS
  bucketing) and the objective's σ, seeded by `config.seed`, in training mode."""
  rngs = nnx.Rngs(config.seed)
  encoder = get_model(config.model, rngs=rngs)
  head = build_head(config.get("head"), encoder, rngs, dataset_buckets)
  fds = fds_lib.build(config.fds, getattr(encoder, "feature_dim", None), dataset_buckets)
  model = Regressor(encoder, rngs=rngs, fds=fds, init_noise_sigma=init_noise_sigma, head=head)
  model.train()
  return model


def build_head(head_config: Any, encoder: nnx.Module, rngs: nnx.Rngs, dataset_buckets: dict | None = None
               ) -> nnx.Module | None:
  """The head of `config.head` ({"name": "uvote", "num_heads": M} or {"name": "vir", ...}, whose PRM uses the
  dataset's FDS `dataset_buckets`); None (no section, or name "linear") keeps the encoder's `make_head`."""
  if not head_config or head_config.get("name", "linear") == "linear":
    return None
  name = head_config["name"]
  if name not in ("uvote", "vir"):
    raise ValueError(f"unknown head.name {name!r}; valid: 'linear', 'uvote', 'vir'")
  if getattr(encoder, "out_dim", 1) != 1:
    raise ValueError(f"head {name!r} predicts one scalar target; the model's out_dim is {encoder.out_dim}")
  if name == "vir":
    return vir.build_head(head_config, encoder.feature_dim, dataset_buckets or {}, rngs)
  return uvote.UvoteHead(encoder.feature_dim, head_config.get("num_heads", 2), rngs=rngs)


def statistics_start(config: ml_collections.ConfigDict) -> int | None:
  """First epoch of the end-of-epoch statistics pass: FDS's `start_update`, or that of VIR's PRM; None
  without either."""
  if config.fds.enabled:
    return config.fds.start_update
  head = config.get("head") or {}
  return vir.statistics_start(head) if head.get("name") == "vir" else None


def sigma_value(model_state: nnx.State) -> float | None:
  """σ of a model state as a Python float (a host read), or None without σ."""
  sigma = model_state.get("noise_sigma")
  return None if sigma is None else float(jax.device_get(sigma[...]))
