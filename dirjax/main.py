"""dirjax command line: `python -m dirjax.main --config=configs/<exp>.py --workdir=DIR [--mode=eval]`.

Kept short on purpose (as flax `examples/imagenet/main.py`): all training logic lives in
`dirjax.train`, which a notebook can call directly. Config fields can be overridden on the command
line, e.g. `--config.num_epochs=10`; a config argument selects a variant of the file
(`configs/x.py:smoke`). `--show_config` prints every field of a config, `--list_configs` the
config files. A config file may live anywhere (its folder is importable, so a data module next to
it can be named in `data.name`).

A user error (a missing file or folder, an unknown name, a config typo, a model that does not fit
the data, an eval workdir without checkpoints) prints one line saying what is wrong and what to do
and exits with status 1 (2 for command-line errors); `--verbose` shows the traceback instead. A
training run that fails before its first checkpoint removes the workdir it created. SIGINT / SIGTERM
during training finish the current step, save a checkpoint and exit with one line and status 130 /
143 (`dirjax.interrupts`); a second signal exits at once.

Several processes (TPU pod slice, GPU nodes) run the same command with `--coordinator_address`,
`--num_processes`, `--process_id`, or with `DIRJAX_DISTRIBUTED=1` where JAX detects the cluster
(`dirjax.distributed`, docs/multihost.md).
"""

import ast
import contextlib
import difflib
import glob
import importlib.util
import logging as std_logging
import os
import shutil
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from dirjax import interrupts

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
  "config", None, "Experiment config file (configs/*.py, examples/*/config.py, or your own copy anywhere); "
  "--show_config prints its fields, --list_configs the available files.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and plots.")
flags.DEFINE_enum("mode", "train", ["train", "eval"], "train (resumes when the workdir has checkpoints) or eval.")
flags.DEFINE_string("checkpoint", "best", "eval mode: 'best', 'latest' or a step number.")
flags.DEFINE_bool("verbose", False, "Show the full traceback of an error instead of its one-line summary.")
flags.DEFINE_bool("show_config", False, "Print every field of --config (with overrides applied) and exit.")
flags.DEFINE_bool("list_configs", False, "List the config files under ./configs and ./examples and exit.")
flags.DEFINE_string("coordinator_address", None, "Multi-process runs: HOST:PORT of process 0's coordinator.")
flags.DEFINE_integer("num_processes", None, "Multi-process runs: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-process runs: index of this process in [0, num_processes).")

# Errors a user can fix from the message alone: shown as one line unless --verbose.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, ImportError, KeyError, FloatingPointError)
CONFIG_GLOBS = ("configs/*.py", "examples/*/config.py", "examples/*.py")


class UsageError(Exception):
  """A command-line mistake (exit status 2)."""


def fail(message: str, status: int) -> None:
  hint = " (--verbose: full traceback)" if status == 1 else ""
  print(f"dirjax: error: {' '.join(str(message).split())}{hint}", file=sys.stderr)
  sys.exit(status)


# ------------------------------------------------------------------------------------------------
# The config: loaded once before absl parses the flags, so that a missing file or a typo in an
# override fails with one line (and the closest field names) instead of a traceback.


def _config_argument(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv[1:], 1):
    if arg.startswith("--config="):
      return arg[len("--config="):]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def load_config_file(value: str):
  """`get_config(arg)` of the file in `--config=PATH[:arg]`; its folder is put on `sys.path` (so a
  data module or helper next to a copied config imports) as is the current folder."""
  path, _, arg = value.partition(":")
  if not os.path.isfile(path):
    raise UsageError(f"config file {path!r} not found (from {os.getcwd()}); give the path of a config file, "
                     "e.g. --config=configs/synthetic_1d.py (--list_configs lists them)")
  for folder in (os.getcwd(), os.path.dirname(os.path.abspath(path))):
    if folder not in sys.path:
      sys.path.insert(0, folder)
  spec = importlib.util.spec_from_file_location("dirjax_user_config", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except ImportError as e:
    raise UsageError(f"config file {path!r} cannot be loaded: {e}. A config that imports from this repository "
                     "(`from configs import ...`) runs from the repository root; a self-contained copy runs "
                     "anywhere (examples/wages/config.py)") from e
  if not hasattr(module, "get_config"):
    raise UsageError(f"config file {path!r} has no get_config() function")
  return module.get_config(arg) if arg else module.get_config()


def config_fields(config, prefix: str = "") -> dict:
  """Flattened `{"optimizer.lr": 0.001, ...}` of a ConfigDict (variants shown as one field)."""
  out = {}
  for key, value in config.items():
    name = f"{prefix}{key}"
    if hasattr(value, "items") and key != "variants":
      out.update(config_fields(value, name + "."))
    else:
      out[name] = value
  return out


def check_overrides(argv: list[str]) -> None:
  """Every `--config.a.b=v` names an existing field; otherwise fail suggesting the closest ones."""
  overrides = [a[len("--config."):].split("=", 1)[0] for a in argv[1:] if a.startswith("--config.")]
  value = _config_argument(argv)
  if value is None:
    if overrides:
      raise UsageError("--config.<field> overrides need --config=<file>")
    return
  config = load_config_file(value)
  fields = config_fields(config)
  for override in overrides:
    node, walked = config, []
    for key in override.split("."):
      if hasattr(node, "keys") and key in node.keys():
        node, walked = node[key], walked + [key]
        continue
      if hasattr(node, "keys") and walked and walked[0] == "variants":
        break  # variants take any override table
      candidates = [n for n in fields if n.startswith(".".join(walked))] or list(fields)
      close = difflib.get_close_matches(override, candidates, n=3, cutoff=0.6)
      hint = f"did you mean {', '.join('--config.' + c for c in close)}? " if close else ""
      raise UsageError(f"--config.{override}: {value.partition(':')[0]} has no field {override!r}; {hint}"
                       f"--config={value} --show_config lists every field")


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing with one-line errors (exit status 2)."""
  try:
    check_overrides(argv)
    rest = FLAGS(argv)
  except UsageError as e:
    fail(e, 2)
  except flags.Error as e:
    close = []
    unknown = str(e).split("'")[1] if str(e).startswith("Unknown command line flag") else ""
    if unknown and "Did you mean" not in str(e):
      close = difflib.get_close_matches(unknown.split("=")[0], list(FLAGS), n=1)
    fail(f"{e}" + (f"; did you mean --{close[0]}?" if close else "; --helpshort lists the flags"), 2)
  return rest


def list_configs() -> list[str]:
  """`path: first docstring line` of every config file found from the current folder."""
  lines = []
  for path in sorted({p for pattern in CONFIG_GLOBS for p in glob.glob(pattern)}):
    if os.path.basename(path).startswith("_"):
      continue
    try:
      with open(path) as f:
        tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
      continue
    if any(isinstance(node, ast.FunctionDef) and node.name == "get_config" for node in tree.body):
      doc = ast.get_docstring(tree) or ""
      lines.append(f"{path}: {doc.splitlines()[0] if doc else ''}")
  return lines


# ------------------------------------------------------------------------------------------------
# Running.


def _has_checkpoint(workdir: str) -> bool:
  """A committed checkpoint (`checkpoints/<step>/`) in the workdir or, for variants, below it."""
  return bool(glob.glob(os.path.join(workdir, "**", "checkpoints", "[0-9]*"), recursive=True))


def _quiet_start() -> None:
  """Drops JAX's note that libtpu is absent (every CPU / GPU run printed it) and orbax's INFO lines."""
  def keep(record: std_logging.LogRecord) -> bool:
    message = record.getMessage()
    if "Unable to initialize backend 'tpu'" in message and "libtpu.so" in message:
      return False
    return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname
  logging.get_absl_logger().addFilter(keep)
  std_logging.getLogger("jax._src.xla_bridge").addFilter(keep)


def run(config, workdir: str) -> None:
  import jax

  from dirjax import distributed, train
  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  logging.info("JAX process %d/%d, local devices: %s", jax.process_index(), jax.process_count(),
               jax.local_devices())
  if FLAGS.mode == "train":
    train.train_and_evaluate(config, workdir)  # inside `main`'s `interrupts.catch_signals()`
    return
  if not _has_checkpoint(workdir):
    raise FileNotFoundError(f"no checkpoint in {workdir}: train first (the same command without --mode=eval) "
                            "or give the --workdir of a finished run")
  which = int(FLAGS.checkpoint) if FLAGS.checkpoint.isdigit() else FLAGS.checkpoint
  train.evaluate(config, workdir, which)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    fail(f"unexpected arguments {argv[1:]}; flags look like --workdir=DIR", 2)
  if FLAGS.list_configs:
    print("\n".join(list_configs()) or f"no config files under {os.getcwd()} ({', '.join(CONFIG_GLOBS)})")
    return
  if FLAGS.config is None:
    fail("--config is required, e.g. --config=configs/synthetic_1d.py (--list_configs lists them)", 2)
  config = FLAGS.config
  if FLAGS.show_config:
    print("\n".join(f"{k} = {v!r}" for k, v in config_fields(config).items()))
    return
  if not FLAGS.workdir:
    fail("--workdir is required: the folder for checkpoints and metrics, e.g. --workdir=/tmp/run", 2)
  _quiet_start()
  workdir = FLAGS.workdir
  created = FLAGS.mode == "train" and not os.path.exists(workdir)
  try:
    with interrupts.catch_signals() if FLAGS.mode == "train" else contextlib.nullcontext():
      run(config, workdir)  # the handlers come first: a signal while JAX imports or data loads is a clean stop too
  except interrupts.Interrupted as e:
    print(f"dirjax: {e}", file=sys.stderr)
    sys.exit(e.exit_code)
  except BaseException as e:
    if created and os.path.isdir(workdir) and not _has_checkpoint(workdir):
      shutil.rmtree(workdir, ignore_errors=True)  # a failed run leaves no half-made workdir behind
    if FLAGS.verbose or not isinstance(e, USER_ERRORS):
      raise
    fail(f"{type(e).__name__}: {e}", 1)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
