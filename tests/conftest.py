"""Test set-up: 4 fake CPU devices, a persistent XLA compilation cache, parsed absl flags, and the
--runslow switch."""

import os
import tempfile

# Must happen before jax initialises its backend.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Shared by the xdist workers and the subprocesses the tests start: a model's initialisers and the
# same jitted steps are compiled once per suite instead of once per test (e.g. DepthNet's eager
# initialisation: 19 s cold, 2 s from the cache). Results are unaffected; set the variable to ""
# to compile everything afresh.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"dirjax-tests-xla-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest  # noqa: E402
from absl import flags  # noqa: E402

if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def pytest_addoption(parser):
  parser.addoption("--runslow", action="store_true", default=False, help="run slow end-to-end tests")


def pytest_collection_modifyitems(config, items):
  if config.getoption("--runslow"):
    return
  skip_slow = pytest.mark.skip(reason="slow end-to-end run: use --runslow")
  for item in items:
    if "slow" in item.keywords:
      item.add_marker(skip_slow)


@pytest.fixture
def shared_data_dir():
  """The real DIR split files beside the checkout (../shared/data); skip when absent."""
  path = os.path.abspath(os.environ.get("DIRJAX_SHARED_DATA", SHARED_DATA))
  if not os.path.isdir(path):
    pytest.skip(f"real split files not found at {path} (only present beside the dev checkout)")
  return path
