"""The docs name only dirjax functions, classes and parameters that exist, and only files that exist.

Checked in every `docs/*.md` page (outside fenced blocks unless stated):

* inline code spans `dirjax.module.name` or `dirjax.module.name(param, other=..., ...)`: the object
  resolves by import + getattr, every parameter named in the parentheses is a parameter of its
  signature (`...` stands for the ones not listed; `**kwargs` needs a variadic keyword), and the named
  parameters appear in signature order;
* fenced ```python blocks: calls through names imported from dirjax (`from dirjax import losses`,
  `from dirjax import fds as fds_lib`) resolve, pass no unknown keyword and not too many positional
  arguments;
* paths `configs/*.py`, `scripts/*.py`, `notebooks/*.ipynb` (with `{a,b}` brace lists) exist.

The checker itself is tested on a small fake page, so a wrong name or parameter cannot pass.
"""

import ast
import importlib
import inspect
import itertools
import os
import re

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DOCS = os.path.join(ROOT, "docs")
DOC_PAGES = ("index.md", "methods.md", "user_guide.md", "reproduction.md", "deviations.md", "multihost.md")

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+)`")
API = re.compile(r"dirjax(?:\.\w+)+(?:\((.*)\))?")
PATH = re.compile(r"\b(?:configs|scripts|notebooks)/[\w{},.\-]+\.(?:py|ipynb)")
IDENT = re.compile(r"[A-Za-z_]\w*")


def resolve(dotted: str):
  """The object named `dotted` (a module, or attributes of the longest importable module prefix)."""
  parts = dotted.split(".")
  for cut in range(len(parts), 0, -1):
    try:
      obj = importlib.import_module(".".join(parts[:cut]))
    except ImportError:
      continue
    for name in parts[cut:]:
      obj = getattr(obj, name)  # AttributeError: the docs name something that does not exist
    return obj
  raise ImportError(f"no importable module in {dotted!r}")


def parameters(obj) -> list[inspect.Parameter]:
  """Call parameters of a function, method (without self) or class (its __init__ without self)."""
  target = obj.__init__ if inspect.isclass(obj) else obj
  params = list(inspect.signature(target).parameters.values())
  if params and params[0].name == "self":
    params = params[1:]
  return params


def split_args(text: str) -> list[str]:
  """Top-level comma split (defaults may contain brackets or quotes)."""
  items, depth, current, quote = [], 0, "", None
  for ch in text:
    if quote:
      quote = None if ch == quote else quote
    elif ch in "\"'":
      quote = ch
    elif ch in "([{":
      depth += 1
    elif ch in ")]}":
      depth -= 1
    elif ch == "," and depth == 0:
      items.append(current.strip())
      current = ""
      continue
    current += ch
  if current.strip():
    items.append(current.strip())
  return items


def check_span(span: str) -> list[str]:
  """Problems with one inline API reference such as `dirjax.losses.bmc_loss(pred, target, ...)`."""
  match = API.fullmatch(span)
  if match is None:
    return [f"`{span}`: not of the form dirjax.name or dirjax.name(params)"]
  dotted = span.split("(", 1)[0]
  try:
    obj = resolve(dotted)
  except (ImportError, AttributeError) as e:
    return [f"`{span}`: {dotted} does not exist ({e})"]
  if match.group(1) is None:
    return []
  params = parameters(obj)
  names = [p.name for p in params]
  variadic_kw = any(p.kind == p.VAR_KEYWORD for p in params)
  problems, last = [], -1
  for item in split_args(match.group(1)):
    if item in ("...", "*"):
      continue
    if item.startswith("**"):
      if not variadic_kw:
        problems.append(f"`{span}`: {dotted} takes no **kwargs")
      continue
    name = item.split("=", 1)[0].strip()
    if not IDENT.fullmatch(name):
      problems.append(f"`{span}`: cannot read parameter {item!r}")
    elif name not in names:
      problems.append(f"`{span}`: {dotted} has no parameter {name!r} (has {names})")
    elif names.index(name) < last:
      problems.append(f"`{span}`: parameter {name!r} is listed out of signature order {names}")
    else:
      last = names.index(name)
  return problems


def dirjax_aliases(tree: ast.AST) -> dict[str, str]:
  """Local names bound to dirjax modules or objects by the imports of a code block."""
  aliases = {}
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dirjax":
      for a in node.names:
        aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    elif isinstance(node, ast.Import):
      for a in node.names:
        if a.name.split(".")[0] == "dirjax":
          aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else "dirjax"
  return aliases


def dotted_name(node: ast.AST) -> str | None:
  if isinstance(node, ast.Name):
    return node.id
  if isinstance(node, ast.Attribute):
    base = dotted_name(node.value)
    return None if base is None else f"{base}.{node.attr}"
  return None


def check_code(code: str) -> list[str]:
  """Problems with the dirjax calls of one ```python block."""
  try:
    tree = ast.parse(code)
  except SyntaxError as e:
    return [f"python block does not parse: {e}"]
  aliases = dirjax_aliases(tree)
  problems = []
  for node in ast.walk(tree):
    if not isinstance(node, ast.Call):
      continue
    name = dotted_name(node.func)
    if name is None or name.split(".")[0] not in aliases:
      continue
    head, _, rest = name.partition(".")
    dotted = aliases[head] + (f".{rest}" if rest else "")
    try:
      obj = resolve(dotted)
    except (ImportError, AttributeError) as e:
      problems.append(f"`{name}(...)`: {dotted} does not exist ({e})")
      continue
    if not callable(obj):
      problems.append(f"`{name}(...)`: {dotted} is not callable")
      continue
    params = parameters(obj)
    names = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if not any(p.kind == p.VAR_KEYWORD for p in params):
      for kw in node.keywords:
        if kw.arg is not None and kw.arg not in names:
          problems.append(f"`{name}(...)`: {dotted} has no parameter {kw.arg!r}")
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not any(p.kind == p.VAR_POSITIONAL for p in params) and len(node.args) > len(positional):
      problems.append(f"`{name}(...)`: {len(node.args)} positional arguments, {dotted} takes {len(positional)}")
  return problems


def expand_braces(path: str) -> list[str]:
  parts = re.split(r"\{([^}]*)\}", path)
  choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
  return ["".join(c) for c in itertools.product(*choices)]


def check_page(text: str, root: str = ROOT) -> list[str]:
  problems = []
  for lang, code in FENCE.findall(text):
    if lang == "python":
      problems += check_code(code)
  prose = FENCE.sub("", text)
  for span in SPAN.findall(prose):
    if span.startswith("dirjax."):
      problems += check_span(span)
  for path in PATH.findall(text):
    for candidate in expand_braces(path):
      if not os.path.exists(os.path.join(root, candidate)):
        problems.append(f"{candidate} does not exist")
  return problems


@pytest.mark.parametrize("page", DOC_PAGES)
def test_docs_name_existing_api(page):
  with open(os.path.join(DOCS, page), encoding="utf-8") as f:
    text = f.read()
  assert check_page(text) == []


def test_docs_reference_the_core_api():
  """The method pages document the public functions of the method modules (not an empty pass)."""
  with open(os.path.join(DOCS, "methods.md"), encoding="utf-8") as f:
    text = f.read()
  spans = {s.split("(")[0] for s in SPAN.findall(FENCE.sub("", text)) if s.startswith("dirjax.")}
  for name in ("dirjax.losses.bmc_loss", "dirjax.losses.gai_loss", "dirjax.losses.bni_loss",
               "dirjax.weighting.kernel_window", "dirjax.weighting.prepare_weights", "dirjax.fds.FDS",
               "dirjax.priors.fit_gmm", "dirjax.priors.bucket_prior", "dirjax.metrics.shot_metrics",
               "dirjax.metrics.balanced_metrics", "dirjax.metrics.depth_metrics",
               "dirjax.weighting.dense_weights", "dirjax.losses.focal_l1", "dirjax.losses.huber"):
    assert name in spans, f"docs/methods.md does not document {name}"


FAKE_PAGE = """
`dirjax.losses.bmc_loss(pred, target, noise_var, ...)` is fine, `dirjax.losses.no_such_loss` is not,
`dirjax.losses.huber(pred, target, delta)` names a parameter that does not exist,
`dirjax.losses.bmc_loss(noise_var, pred)` lists parameters out of order,
`dirjax.weighting.kernel_window(**kwargs)` claims a variadic keyword, and configs/no_such.py is missing.

```python
from dirjax import losses, weighting as w
losses.mse(pred, target, weight=None)
w.Binning(10, 0.0, 1.0, 5)
losses.not_there(pred)
```
"""


def test_checker_rejects_wrong_names_parameters_and_paths():
  problems = check_page(FAKE_PAGE)
  expected = ("no_such_loss", "has no parameter 'delta'", "out of signature order",
              "takes no **kwargs", "configs/no_such.py does not exist", "has no parameter 'weight'",
              "4 positional arguments", "dirjax.losses.not_there does not exist")
  for fragment in expected:
    assert any(fragment in p for p in problems), (fragment, problems)
  assert len(problems) == len(expected), problems


def test_checker_accepts_methods_classes_and_brace_paths():
  page = ("`dirjax.fds.FDS(feature_dim, bucket_num, ..., clip_max)` `dirjax.fds.FDS.update(sums, epoch)` "
          "`dirjax.weighting.Binning.index(labels)` `dirjax.weighting` configs/synthetic_{1d,2d}.py")
  assert check_page(page) == []
