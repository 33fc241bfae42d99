"""MLP dropout and the ResNet's bfloat16 compute path, checked against what they must compute."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dirjax.models.mlp import MLP
from dirjax.models.resnet import ResNet


def test_mlp_dropout_rate_and_inverted_scaling_on_positive_activations():
  """All hidden units positive (ReLU zeroes none), so every zero is a dropped unit: the zero rate is
  p within 5 binomial standard deviations and kept units are h / (1 − p); eval mode is h."""
  p, batch, width = 0.3, 64, 256
  model = MLP(4, hidden=(width,), dropout=p, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)
  kernel = rng.uniform(0.1, 1.0, (4, width)).astype(np.float32)
  bias = rng.uniform(0.1, 1.0, width).astype(np.float32)
  model.layers[0].kernel[...] = jnp.asarray(kernel)
  model.layers[0].bias[...] = jnp.asarray(bias)
  x = rng.uniform(0.0, 1.0, (batch, 4)).astype(np.float32)
  hidden = np.maximum(x @ kernel + bias, 0.0)
  assert hidden.min() > 0.1

  train_features = model(jnp.asarray(x))
  train_features = np.asarray(train_features)
  dropped = train_features == 0
  bound = 5 * np.sqrt(p * (1 - p) / dropped.size)  # 0.018 for 16,384 units
  assert abs(dropped.mean() - p) < bound, (dropped.mean(), p, bound)
  np.testing.assert_allclose(train_features[~dropped], hidden[~dropped] / (1 - p), rtol=1e-5)

  model.eval()
  eval_features = model(jnp.asarray(x))
  np.testing.assert_allclose(eval_features, hidden, rtol=1e-5)


def _equation_dtypes(jaxpr, primitive: str) -> list[tuple]:
  """(input dtypes, output dtypes) of every `primitive` equation, nested jaxprs included."""
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == primitive:
      found.append((tuple(v.aval.dtype for v in eqn.invars), tuple(v.aval.dtype for v in eqn.outvars)))
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      found += _equation_dtypes(sub, primitive)
  return found


def test_resnet_bfloat16_computes_convolutions_and_activations_in_bfloat16():
  """dtype="bfloat16": float32 parameters, every conv and ReLU of the traced forward in bfloat16, the
  pooled features in float32 (read from the jaxpr, not from the outputs)."""
  model = ResNet(18, stem="cifar", dtype="bfloat16", width=4, stage_sizes=(1, 1, 1, 1), rngs=nnx.Rngs(0))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
  graphdef, state = nnx.split(model)

  def forward(state, x):
    return nnx.merge(graphdef, state)(x)

  jaxpr = jax.make_jaxpr(forward)(state, jnp.ones((2, 8, 8, 3), jnp.float32)).jaxpr
  bf16 = jnp.dtype(jnp.bfloat16)
  convs = _equation_dtypes(jaxpr, "conv_general_dilated")
  assert len(convs) == 1 + 4 * 2 + 3  # stem, two per basic block, three projection shortcuts
  assert all(dtypes == ((bf16, bf16), (bf16,)) for dtypes in convs), convs
  relus = _equation_dtypes(jaxpr, "custom_jvp_call")  # jax.nn.relu, the model's only custom-JVP function
  assert len(relus) == 1 + 4 * 2 and all(dtypes == ((bf16,), (bf16,)) for dtypes in relus), relus
  assert [v.aval.dtype for v in jaxpr.outvars] == [jnp.float32]  # the pooled features
