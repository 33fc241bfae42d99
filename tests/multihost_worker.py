"""One process of the 2-process CPU run of `tests/test_multihost.py` (not a test itself).

  python tests/multihost_worker.py --config=configs/synthetic_1d.py:smoke --workdir=W \
    --coordinator_address=127.0.0.1:PORT --num_processes=2 --process_id=I --loader_check_out=OUT.json

Runs `dirjax.main` unchanged (distributed start-up from its flags, training, evaluation,
checkpoints) on the config of `configure`, then `loader_check`, which records what this process's
loaders read and assemble, for the test to check against its own index arithmetic.
"""

import json

import ml_collections
import numpy as np

EVAL_ROWS = 37  # does not divide the eval batch (8) nor the 4 devices


def configure(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The synthetic 1-D smoke config turned into a global-batch-sensitive run: MLP 1→8→1, BMC with a
  learnable σ (B×B logits), FDS (statistics summed over all rows), 32 training rows in global
  batches of 8 (4 steps per epoch, 2 epochs; epoch 1 calibrates with the smoothed statistics),
  37 val/test rows in eval batches of 8 (3 padded rows)."""
  with c.unlocked():
    c.variants = ml_collections.ConfigDict()
    c.num_epochs = 2
    c.data.num_train, c.data.num_val, c.data.num_test = 32, EVAL_ROWS, EVAL_ROWS
    c.batch_size = c.eval_batch_size = 8
    c.model.hidden = (8,)
    c.loss.name, c.loss.fix_noise_sigma = "bmc", False
    c.fds.enabled = True
  return c


def loader_check(path: str) -> None:
  """Writes, for a 37-row unshuffled split in batches of 8: the rows this process reads on the
  global mesh, and the global batches assembled on a mesh that interleaves the processes' devices
  (as a TPU slice's topology-ordered mesh can), read back on every process."""
  import jax
  from jax.sharding import Mesh

  from dirjax import sharding
  from dirjax.data import pipeline

  dataset = pipeline.ArrayDataset({"inputs": np.arange(EVAL_ROWS, dtype=np.float32)[:, None]})
  loader = pipeline.Loader(dataset, batch_size=8, mesh=sharding.make_mesh())
  local = [loader.local_batch(0, s) for s in range(loader.steps_per_epoch)]
  by_process = [[d for d in jax.devices() if d.process_index == p] for p in range(jax.process_count())]
  interleaved = Mesh(np.array([d for group in zip(*by_process) for d in group]), (sharding.DATA_AXIS,))
  assembled = [sharding.to_host(b) for b in pipeline.Loader(dataset, batch_size=8, mesh=interleaved)(0)]
  with open(path, "w") as f:
    json.dump({
      "process": jax.process_index(),
      "interleaved_devices": [[d.process_index, d.id] for d in interleaved.devices.flat],
      "local_rows": [b["inputs"][:, 0].astype(int).tolist() for b in local],
      "local_valid": [b["valid"].tolist() for b in local],
      "global_rows": [b["inputs"][:, 0].astype(int).tolist() for b in assembled],
      "global_valid": [b["valid"].tolist() for b in assembled],
    }, f)


if __name__ == "__main__":
  from absl import app, flags

  from dirjax import main

  flags.DEFINE_string("loader_check_out", None, "Where to write the loader check (JSON).")

  def run(argv: list[str]) -> None:
    configure(flags.FLAGS.config)
    main.main(argv)
    loader_check(flags.FLAGS.loader_check_out)

  app.run(run)
