"""Every citation points to something a reader of the repository can open.

dirjax's code, configs, docs, scripts, notebooks, tests and README cite papers (equation, section as
"Sec."), upstream files of YyzHarry/imbalanced-regression and jiawei-ren/BalancedMSE, upstream
issues named with their repository ("upstream DIR issue #42", "BMSE #18") and rows of
docs/deviations.md ("row 17", "R6"). They must not cite notes that are not in the repository:
numbered quirks of private specification notes ("Q5" or "D-Q6" in parentheses, "Q9:"), those notes' files and
sections ("dir_reference.md", "§2.1") or tracker numbers of this project ("issue #9"). Each rule is
also tried on examples here, so a rule that never matches cannot pass.
"""

import os
import re

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SCANNED = ("dirjax", "configs", "docs", "scripts", "notebooks", "tests", "README.md")
SUFFIXES = (".py", ".md", ".ipynb", ".txt", ".toml", ".cfg", ".yaml", ".yml")
THIS_FILE = os.path.abspath(__file__)

UPSTREAM = re.compile(r"\b(?:upstream|DIR|BMSE|BalancedMSE|imbalanced-regression)\b")
RULES = {
    "spec-note quirk number": re.compile(
        r"\((?:[A-Z]-)?Q\d+"  # Q5, D-Q6, "Q5, Q14" right after an opening parenthesis
        r"|\b[A-Z]-Q\d+\b"  # "D-Q7, upstream #43"
        r"|\bQ\d+\)"  # "(faithful, Q22)"
        r"|\bQ\d+:"  # "Q9: BatchNorm ..."
        r"|\b(?:quirks?|spec|DIR|BMSE)\s+Q\d+"),  # "quirk Q16", "spec Q16", "DIR Q4"
    "spec-note file or section": re.compile(
        r"\b(?:dir|balanced_mse|regularisers|newer_methods)_reference\b|\b(?:environment|landscape)\.md\b"
        r"|§|\b(?:DIR|BalancedMSE|balanced_mse|BMSE)\s+spec\b"),
    "issue number without its upstream repository": re.compile(r"\bissues?\s+#\d+", re.I),
}
HINT = ("cite what a reader can open instead: the upstream file (and line) of YyzHarry/imbalanced-regression or "
        "jiawei-ren/BalancedMSE, a paper equation / Sec., an upstream issue with its repository "
        "('upstream DIR issue #42'), or the row of docs/deviations.md ('row 17', 'R6')")


def _scanned_files():
  for top in SCANNED:
    path = os.path.join(ROOT, top)
    if os.path.isfile(path):
      yield path
      continue
    for dirpath, dirnames, filenames in os.walk(path):
      dirnames[:] = [d for d in dirnames if not d.startswith((".", "__"))]
      for name in filenames:
        full = os.path.join(dirpath, name)
        if name.endswith(SUFFIXES) and full != THIS_FILE:
          yield full


NEEDS_UPSTREAM = "issue number without its upstream repository"  # fine when the 30 characters before name it


def find_citations(text: str, rule_name: str) -> list[tuple[int, str]]:
  """(line number, line) of every line of `text` that the rule `rule_name` flags."""
  hits = {}
  for m in RULES[rule_name].finditer(text):
    line_start = text.rfind("\n", 0, m.start()) + 1
    if rule_name == NEEDS_UPSTREAM and UPSTREAM.search(text, max(line_start, m.start() - 30), m.start()):
      continue
    hits[text.count("\n", 0, m.start()) + 1] = text[line_start:].split("\n", 1)[0].strip()
  return sorted(hits.items())


@pytest.mark.parametrize("rule_name", sorted(RULES))
def test_no_private_citations(rule_name):
  hits = []
  for path in _scanned_files():
    with open(path, encoding="utf-8") as f:
      for line_no, line in find_citations(f.read(), rule_name):
        hits.append(f"{os.path.relpath(path, ROOT)}:{line_no}: {line[:160]}")
  assert not hits, f"{rule_name} in {len(hits)} place(s); {HINT}:\n" + "\n".join(hits)


P = "("  # keeps these examples out of a plain grep for parenthesised Q-numbers


@pytest.mark.parametrize("rule_name, bad", [
    ("spec-note quirk number", f"as the reference {P}Q9: BatchNorm uses batch statistics)"),
    ("spec-note quirk number", f"the checkpoints {P}Q5, Q14)"),
    ("spec-note quirk number", f"crashes as committed {P}B-Q9)"),
    ("spec-note quirk number", "faithful: truncated to integers, Q22)"),
    ("spec-note quirk number", "Q9: the statistics pass runs in training mode"),
    ("spec-note quirk number", "per-GPU BatchNorm (quirk Q16)."),
    ("spec-note file or section", "Reference recipe (dir_reference.md §4.1–4.5)"),
    ("spec-note file or section", "the GMM labels (balanced_mse_reference §3.2)"),
    ("spec-note file or section", "can deadlock (environment.md)"),
    ("spec-note file or section", "Reference (DIR spec §4.3)"),
    ("issue number without its upstream repository", "Training-step benchmarks (issue #9)"),
    ("issue number without its upstream repository", "PyTorch baselines (GitHub issue #9)"),
])
def test_rules_flag_private_citations(rule_name, bad):
  assert find_citations(bad, rule_name) == [(1, bad)]


@pytest.mark.parametrize("good", [
    "a [B, B] loss (upstream BalancedMSE issue #18)",
    "this order, upstream DIR issue #42",
    "constant 0 for B = 1, upstream issues #14/#19",
    "requested upstream (BMSE #2, #7)",
    "Feature Distribution Smoothing (Yang et al., ICML 2021, Sec. 3.2, Eqs. 3-5)",
    "five-number summary [lower whisker, Q1, median, Q3, upper whisker]",
    "Q1 − coef·IQR, Q3 + coef·IQR",
    "faithful (docs/deviations.md R4); NYUD2 (row 22)",
])
def test_rules_pass_openable_citations(good):
  assert all(not find_citations(good, rule_name) for rule_name in RULES)
