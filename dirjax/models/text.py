"""STS-B-DIR BiLSTM encoder (Yang et al. 2021, `sts-b-dir/models.py`).

Frozen 300-d word embeddings → dropout → 2-layer BiLSTM (1500 per direction) → dropout → masked
max-pool over time → pair feature `[u, v, |u−v|, u⊙v]` (12,000-d); the `Regressor` adds (FDS and)
the head Linear(·, 1) scaled by `output_scale`. The default STS-B encoder when GloVe is missing is
the offline MiniLM of `dirjax.models.minilm`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from dirjax import writers
from dirjax.models.base import Encoder, pytorch_linear


class FrozenEmbedding(nnx.Variable):
  """Word-embedding matrix kept out of the optimizer (reference `--train_words 0`)."""


def pair_features(u: jax.Array, v: jax.Array) -> jax.Array:
  """The reference pair encoding `[u, v, |u − v|, u ⊙ v]` along the last axis."""
  return jnp.concatenate([u, v, jnp.abs(u - v), u * v], axis=-1)


class ScaledHead(nnx.Module):
  """`scale · linear(features)`."""

  def __init__(self, linear: nnx.Linear, scale: float):
    self.linear, self.scale = linear, scale

  def __call__(self, features: jax.Array) -> jax.Array:
    return self.scale * self.linear(features)


class BiLSTMEncoder(Encoder):
  """Reference STS-B-DIR encoder; inputs are int32 token ids `[B, 2, L]` (pad id 0).

  Embeddings are frozen (a `FrozenEmbedding`, not an `nnx.Param`). Deviation: LSTM weights use
  flax's initialisers (PyTorch uses U(±1/√hidden)); allennlp's masking/packing is reproduced with
  `seq_lengths` (the backward direction starts at each sentence's last real token) and the
  max-pool ignores padding. The features are the 4·2·hidden pair encoding; the head is
  `output_scale · Linear(features)`: the reference regresses score/5, we regress the score with the
  head's output ×5 (same function; see `dirjax.data.stsb`).
  """

  def __init__(
      self,
      vocab_size: int = 30002,
      embed_dim: int = 300,
      hidden: int = 1500,
      num_layers: int = 2,
      dropout: float = 0.2,
      embeddings: str | None = None,
      output_scale: float = 5.0,
      *,
      rngs: nnx.Rngs,
  ):
    if embeddings is not None:
      matrix = writers.load_npy(embeddings, fix="delete it; the next STS-B preparation rebuilds it")
      if matrix.ndim != 2 or matrix.shape[1] != embed_dim:
        raise ValueError(f"embeddings {embeddings!r} has shape {matrix.shape}; expected [V, {embed_dim}]")
      vocab_size = matrix.shape[0]
    else:
      matrix = jax.random.normal(rngs.params(), (vocab_size, embed_dim))
      matrix = matrix.at[0].set(0.0)  # padding row is zero, as in the reference
    if not 0.0 <= dropout < 1.0:
      raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    self.embedding = FrozenEmbedding(jnp.asarray(matrix, jnp.float32))
    layers = []
    width = embed_dim
    for _ in range(num_layers):
      layers.append(nnx.Bidirectional(
        nnx.RNN(nnx.OptimizedLSTMCell(width, hidden, rngs=rngs)),
        nnx.RNN(nnx.OptimizedLSTMCell(width, hidden, rngs=rngs), reverse=True, keep_order=True),
        rngs=False))
      width = 2 * hidden
    self.lstm = nnx.List(layers)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)
    self.feature_dim = 4 * width
    self.output_scale = output_scale

  def make_head(self, *, rngs: nnx.Rngs) -> ScaledHead:
    return ScaledHead(pytorch_linear(self.feature_dim, 1, rngs=rngs), self.output_scale)

  def encode(self, tokens: jax.Array) -> jax.Array:
    """Sentence encoding `[B, 2·hidden]` of int token ids `[B, L]` (masked max-pool)."""
    mask = tokens != 0
    lengths = jnp.maximum(mask.sum(-1), 1)
    h = self.dropout(self.embedding[...][tokens])
    for layer in self.lstm:
      h = layer(h, seq_lengths=lengths)
    h = self.dropout(h)
    return jnp.max(jnp.where(mask[..., None], h, -jnp.inf), axis=1)

  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim != 3 or x.shape[1] != 2:
      raise ValueError(f"BiLSTMEncoder expects token ids [B, 2, L], got shape {x.shape}")
    batch = x.shape[0]
    both = self.encode(jnp.concatenate([x[:, 0], x[:, 1]], axis=0))
    return pair_features(both[:batch], both[batch:])
