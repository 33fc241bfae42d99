"""An objective term defined outside dirjax, named in a config by its import path
(`config.regularizers.<label>.name = "objective_terms:build_alignment"`)."""

import jax.numpy as jnp


def build_alignment(section, config, bundle):
  """λ · mean over valid rows of Σ_d preds · features: reads the predictions, the encoder's
  features and the row mask of the step, and its own weight λ from its config section."""
  del config, bundle
  weight = section.weight

  def alignment(inputs):
    rows = jnp.sum(inputs.preds * inputs.features, axis=-1)
    valid = inputs.mask.astype(rows.dtype)
    return weight * jnp.sum(rows * valid) / jnp.maximum(jnp.sum(valid), 1.0)

  return alignment
