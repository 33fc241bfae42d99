"""dirjax command line: `python -m dirjax.main --config=configs/<exp>.py --workdir=DIR [--mode=eval]`.

Kept short on purpose (as flax `examples/imagenet/main.py`): all logic lives in `dirjax.train`,
which a notebook can call directly. Config fields can be overridden on the command line, e.g.
`--config.num_epochs=10`; a config argument selects a variant of the file (`configs/x.py:smoke`).

Several processes (TPU pod slice, GPU nodes) run the same command with `--coordinator_address`,
`--num_processes`, `--process_id`, or with `DIRJAX_DISTRIBUTED=1` where JAX detects the cluster
(`dirjax.distributed`, docs/multihost.md).
"""

import logging as std_logging

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from dirjax import distributed, train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and plots.")
flags.DEFINE_enum("mode", "train", ["train", "eval"], "train (resumes when the workdir has checkpoints) or eval.")
flags.DEFINE_string("checkpoint", "best", "eval mode: 'best', 'latest' or a step number.")
flags.DEFINE_string("coordinator_address", None, "Multi-process runs: HOST:PORT of process 0's coordinator.")
flags.DEFINE_integer("num_processes", None, "Multi-process runs: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-process runs: index of this process in [0, num_processes).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  # orbax logs every save/restore at INFO; keep its warnings only.
  logging.get_absl_logger().addFilter(lambda r: r.levelno >= std_logging.WARNING or "orbax" not in r.pathname)
  logging.info("JAX process %d/%d, local devices: %s", jax.process_index(), jax.process_count(),
               jax.local_devices())
  if FLAGS.mode == "train":
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  else:
    which = int(FLAGS.checkpoint) if FLAGS.checkpoint.isdigit() else FLAGS.checkpoint
    train.evaluate(FLAGS.config, FLAGS.workdir, which)


if __name__ == "__main__":
  app.run(main)
