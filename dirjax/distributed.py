"""Multi-process start-up on JAX's own multi-controller runtime (`jax.distributed`).

One Python process per host (or per GPU); every process runs the same `dirjax.main` command.
`initialize` calls `jax.distributed.initialize` when the command line or the environment asks for
it, before any JAX computation:

* flags: `--coordinator_address=HOST:PORT --num_processes=N --process_id=I` (any of them may be left
  out where JAX's cluster detection fills it in: Cloud TPU pods, SLURM, Open MPI, Kubernetes; the
  coordinator address may also come from `JAX_COORDINATOR_ADDRESS`);
* environment: `DIRJAX_DISTRIBUTED=1` with no flags lets JAX detect everything (a TPU pod slice, an
  `srun` job step).

Without either, nothing happens and the run is a single process. After start-up `jax.devices()`
lists every process's devices; `sharding.make_mesh` builds the global mesh over them.
"""

import os

import jax
from absl import logging

ENV_SWITCH = "DIRJAX_DISTRIBUTED"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def env_requested(environ: dict[str, str] | None = None) -> bool:
  """Whether `DIRJAX_DISTRIBUTED` switches multi-process start-up on (1/true/yes/on; 0/false/no/off
  or unset: off). Anything else is an error rather than a silent single-process run."""
  value = (os.environ if environ is None else environ).get(ENV_SWITCH, "").strip().lower()
  if value not in _TRUE + _FALSE:
    raise ValueError(f"{ENV_SWITCH}={value!r}: use 1/true/yes/on or 0/false/no/off")
  return value in _TRUE


def _check_args(coordinator_address: str | None, num_processes: int | None, process_id: int | None) -> None:
  if coordinator_address is not None:
    host, _, port = coordinator_address.rpartition(":")
    if not host or not port.isdigit():
      raise ValueError(f"coordinator_address must look like HOST:PORT, got {coordinator_address!r}")
  if num_processes is not None and num_processes < 1:
    raise ValueError(f"num_processes must be >= 1, got {num_processes}")
  if process_id is not None:
    if process_id < 0 or (num_processes is not None and process_id >= num_processes):
      raise ValueError(f"process_id must be in [0, num_processes), got {process_id} "
                       f"with num_processes={num_processes}")


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, environ: dict[str, str] | None = None) -> bool:
  """Starts `jax.distributed` if any argument is given or `DIRJAX_DISTRIBUTED` is on; returns True
  when the run is multi-controller (also when it was already initialised), False otherwise.

  Arguments left as None are detected by JAX from the cluster's environment. Must be called before
  the first JAX computation (JAX raises otherwise).
  """
  coordinator_address = coordinator_address or None
  explicit = (coordinator_address, num_processes, process_id) != (None, None, None)
  _check_args(coordinator_address, num_processes, process_id)
  if not explicit and not env_requested(environ):
    return False
  if jax.distributed.is_initialized():
    return True
  try:
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)
  except ValueError as e:  # JAX could not detect the missing values.
    raise ValueError(f"multi-process start-up failed: {e} Pass --coordinator_address, --num_processes "
                     f"and --process_id, or run under a cluster JAX detects (TPU pod, SLURM, Open MPI, "
                     f"Kubernetes).") from e
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
  return True
