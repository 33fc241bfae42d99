"""ConR: contrastive regularisation for deep imbalanced regression (Keramati, Meng, Evans, ICLR 2024).

Over N anchors with L2-normalised features z, labels y and (stop-gradient) predictions p, with
S_ij = z_i·z_j / τ, D_ij = |y_i − y_j| and E_ij = |p_i − p_j| (paper Eq. 1–3, as the code computes it):

  positives  P_i = {j ≠ i : D_ij ≤ ω},   negatives  N_i = {j : D_ij > ω and E_ij ≤ ω}
  den_i = Σ_{j∈P_i} exp(S_ij) + (N − |P_i|) + Σ_{j∈N_i} π_ij exp(S_ij)
  ℓ_i = (1/c_i) Σ_{j∈P_i} (log den_i − S_ij),   L = (1/N) Σ_i v_i [N_i ≠ ∅] ℓ_i

The `N − |P_i|` term is the reference's: it masks scores by multiplying them with 0, so every
non-positive column adds exp(0) = 1 to the denominator (kept, docs/deviations.md row 49). Two variants:

* `"age"` (BorealisAI/ConR `agedb-dir/loss.py` L75–120, `imdb-wiki-dir/loss.py` L63–106): the anchors
  are both augmented views of the batch, N = 2B, features the raw encoder output; π_ij = w_i·exp(e·D_ij),
  c_i = |P_i|, v_i = w_i (w the anchor's sample weight of `config.reweight`).
* `"depth"` (`nyud2-dir/ConR.py` L9–75): one view, the anchors are the B images with their flattened
  encoder map as features, the image-mean depth as label and prediction; π_ij = e·D_ij·w̄_i (linear, w̄
  the image-mean pixel weight), c_i = |P_i| + 1 (the anchor itself is counted) and v_i = 1.

Padding rows take no part: they are neither anchors nor columns, and N counts the valid anchors.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from dirjax.objective import TermInputs

VARIANTS = ("age", "depth")


def conr_loss(features: jax.Array, labels: jax.Array, preds: jax.Array, weights: jax.Array, valid: jax.Array, *,
              window: float, push_scale: float, temperature: float, variant: str = "age") -> jax.Array:
  """ConR over N anchors: features [N, D], labels / preds [N] (scalars per anchor), weights [N] (the
  anchor-side weight), valid [N] bool. Computed in float32; `preds` is taken without gradient."""
  if variant not in VARIANTS:
    raise ValueError(f"conr variant must be one of {VARIANTS}, got {variant!r}")
  features = features.astype(jnp.float32)
  norm = jnp.sqrt(jnp.sum(jnp.square(features), axis=-1, keepdims=True))
  z = features / jnp.maximum(norm, 1e-12)  # torch F.normalize
  scores = z @ z.T / temperature
  labels, preds = labels.astype(jnp.float32), jax.lax.stop_gradient(preds).astype(jnp.float32)
  label_dist = jnp.abs(labels[:, None] - labels[None, :])
  pred_dist = jnp.abs(preds[:, None] - preds[None, :])
  pair = valid[:, None] & valid[None, :]
  near = (label_dist <= window) & pair
  positive = near & ~jnp.eye(len(labels), dtype=bool)
  negative = (label_dist > window) & (pred_dist <= window) & pair
  w = weights.astype(jnp.float32)[:, None]
  if variant == "age":
    push = w * jnp.exp(push_scale * label_dist)
  else:
    push = push_scale * label_dist * w
  num_positive = jnp.sum(positive, axis=1)
  num_valid = jnp.sum(valid)
  den = (jnp.sum(jnp.where(positive, jnp.exp(scores), 0.0), axis=1) + (num_valid - num_positive)
         + jnp.sum(jnp.where(negative, push * jnp.exp(scores), 0.0), axis=1))
  pull = jnp.sum(jnp.where(positive, jnp.log(den)[:, None] - scores, 0.0), axis=1)
  count = num_positive if variant == "age" else jnp.sum(near, axis=1)
  # An anchor without positives has an empty sum: 0 here, 0/0 = NaN in the reference (docs/deviations.md row 50).
  per_anchor = pull / jnp.maximum(count, 1)
  scale = w[:, 0] if variant == "age" else 1.0
  keep = valid & jnp.any(negative, axis=1)
  return jnp.sum(jnp.where(keep, scale * per_anchor, 0.0)) / jnp.maximum(num_valid, 1)


def _row_weights(inputs: TermInputs) -> jax.Array:
  """Per-sample weights [B] (the mean over a dense sample's pixels), ones without re-weighting."""
  batch_size = inputs.targets.shape[0]
  if inputs.weights is None:
    return jnp.ones((batch_size,), jnp.float32)
  return jnp.mean(inputs.weights.reshape(batch_size, -1).astype(jnp.float32), axis=1)


def build(section: Any, config: Any, bundle: Any):
  """The ConR term of `section`: `weight` (β), `window` (ω), `push_scale` (e), `temperature` (τ),
  `variant` ("age": two views, needs `data.two_views`; "depth": one view, image means)."""
  del bundle
  variant = section.get("variant", "age")
  if variant not in VARIANTS:
    raise ValueError(f"regularizers: conr variant must be one of {VARIANTS}, got {variant!r}")
  for key in ("weight", "window", "push_scale", "temperature"):
    if key not in section:
      raise ValueError(f"regularizers: conr needs {key!r} (e.g. weight=4.0, window=1.0, push_scale=0.01, "
                       "temperature=0.07 as the AgeDB-DIR reference)")
  if not section["temperature"] > 0 or not section["window"] >= 0:
    raise ValueError(f"regularizers: conr needs temperature > 0 and window >= 0, got "
                     f"temperature={section['temperature']}, window={section['window']}")
  if variant == "age" and not config.data.get("two_views", False):
    raise ValueError("regularizers: conr (variant 'age') contrasts two augmented views: set data.two_views=True "
                     "(or variant='depth' for the one-view NYUD2-DIR form)")
  kwargs = dict(window=float(section["window"]), push_scale=float(section["push_scale"]),
                temperature=float(section["temperature"]), variant=variant)
  weight = float(section["weight"])

  def term(inputs: TermInputs) -> jax.Array:
    batch_size = inputs.targets.shape[0]
    valid = inputs.batch["valid"]
    w = _row_weights(inputs)
    if variant == "depth":
      def image_mean(x):
        return jnp.mean(x.reshape(batch_size, -1).astype(jnp.float32), axis=1)
      return weight * conr_loss(inputs.features.reshape(batch_size, -1), image_mean(inputs.targets),
                                image_mean(inputs.preds), w, valid, **kwargs)
    if inputs.targets.ndim != 2 or inputs.targets.shape[-1] != 1:
      raise ValueError(f"conr variant 'age' needs scalar targets [B, 1], got {inputs.targets.shape}; "
                       "dense targets use variant='depth'")
    second = inputs.model(inputs.batch["inputs_view2"], inputs.targets, inputs.epoch)
    features = jnp.concatenate([inputs.features, second.features]).reshape(2 * batch_size, -1)
    labels = jnp.concatenate([inputs.targets, inputs.targets]).reshape(2 * batch_size, -1)[:, 0]
    preds = jnp.concatenate([inputs.preds, second.preds]).reshape(2 * batch_size, -1)[:, 0]
    return weight * conr_loss(features, labels, preds, jnp.concatenate([w, w]), jnp.concatenate([valid, valid]),
                              **kwargs)

  return term
