"""Every ```python block of README.md and docs/*.md runs.

Blocks of one page run in order in one namespace (later snippets use the names of earlier ones),
seeded with the page's fixture data (`FIXTURES`). A block that is deliberately not runnable
carries `<!-- not-run: reason -->` on the line right before its fence and is skipped with that
reason. The collector is tested on a fake page: a broken block fails, a marked one is skipped.
"""

import dataclasses
import os
import re

import jax.numpy as jnp
import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PAGES = ("README.md", *sorted(os.path.join("docs", p) for p in os.listdir(os.path.join(ROOT, "docs"))
                              if p.endswith(".md")))
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.+?)\s*-->\s*\n$")


@dataclasses.dataclass(frozen=True)
class Block:
  page: str
  line: int
  code: str
  skip_reason: str | None

  @property
  def name(self) -> str:
    return f"{self.page}:{self.line}"


def python_blocks(page: str, text: str) -> list[Block]:
  blocks = []
  for match in FENCE.finditer(text):
    before = text[:match.start()]
    marker = NOT_RUN.search(before[before.rfind("\n", 0, len(before) - 1) + 1:])
    blocks.append(Block(page, before.count("\n") + 1, match.group(1), marker.group(1) if marker else None))
  return blocks


def income_example() -> dict:
  """User-guide data: incomes in $k (long-tailed, 10..210) from 8 features, and one batch."""
  rng = np.random.default_rng(0)
  x_train = rng.normal(size=(1024, 8)).astype(np.float32)
  y_train = np.clip(10 + rng.lognormal(3.3, 0.6, 1024) + 3 * x_train[:, 0], 10, 209.9).astype(np.float32)
  return {"x_train": x_train, "y_train": y_train, "pred": jnp.asarray(y_train[:16, None] + 5.0),
          "target": jnp.asarray(y_train[:16, None]), "sigma": jnp.array(8.0)}


FIXTURES = {os.path.join("docs", "user_guide.md"): income_example}

BLOCKS = [b for page in PAGES for b in python_blocks(page, open(os.path.join(ROOT, page)).read())]


def run_page_until(block: Block, blocks: list[Block], namespaces: dict) -> dict:
  """Runs the runnable blocks of `block.page` up to `block` (each once) in the page's namespace."""
  state = namespaces.setdefault(block.page, {"ns": dict(FIXTURES.get(block.page, dict)()), "done": set()})
  for earlier in blocks:
    if earlier.page != block.page or earlier.skip_reason or earlier.name in state["done"]:
      continue
    state["done"].add(earlier.name)
    exec(compile(earlier.code, earlier.name, "exec"), state["ns"])  # noqa: S102 (the docs' own code)
    if earlier is block:
      break
  return state["ns"]


@pytest.fixture(scope="module")
def namespaces():
  return {}


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_docs_python_block_runs(block, namespaces, monkeypatch):
  if block.skip_reason:
    pytest.skip(block.skip_reason)
  monkeypatch.chdir(ROOT)
  run_page_until(block, BLOCKS, namespaces)


def test_blocks_counted_and_marked():
  """At the time of writing 12 blocks: README's and the user guide's 5 run, architecture.md's 6
  signature listings are marked; a marker may not swallow the runnable pages."""
  runnable = {b.page for b in BLOCKS if not b.skip_reason}
  assert {"README.md", os.path.join("docs", "user_guide.md")} <= runnable, [(b.name, b.skip_reason) for b in BLOCKS]
  assert sum(not b.skip_reason for b in BLOCKS) >= 6


def test_user_guide_fds_buckets_are_the_lds_bins(namespaces):
  """The FDS statistics pass of the user guide counts each sample in its LDS bin."""
  guide = [b for b in BLOCKS if b.page.endswith("user_guide.md") and "model.fds.update" in b.code]
  ns = run_page_until(guide[0], BLOCKS, namespaces)
  counts = np.bincount(np.clip(np.floor((ns["y_train"] - 10.0) / 5.0), 0, 39).astype(int), minlength=40)
  np.testing.assert_array_equal(np.asarray(ns["model"].fds.num_samples_tracked[...]), counts)
  assert counts[:10].sum() > 0  # the raw labels would leave buckets 0-9 empty


def test_collector_runs_broken_blocks_and_skips_marked_ones():
  page = ("Intro\n\n```python\nx = 1\n```\n\n<!-- not-run: needs a GPU -->\n```python\nraise SystemExit\n```\n"
          "\n```python\ny = x + undefined_name\n```\n")
  blocks = python_blocks("fake.md", page)
  assert [(b.line, b.skip_reason) for b in blocks] == [(3, None), (8, "needs a GPU"), (12, None)]
  namespaces = {}
  assert run_page_until(blocks[0], blocks, namespaces)["x"] == 1
  with pytest.raises(NameError, match="undefined_name"):
    run_page_until(blocks[2], blocks, namespaces)
