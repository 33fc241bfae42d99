"""Test set-up: 4 fake CPU devices, parsed absl flags, and the --runslow switch."""

import os

# Must happen before jax initialises its backend.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

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
