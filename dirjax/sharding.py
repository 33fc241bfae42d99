"""Device mesh, batch placement and multi-process helpers (data parallelism over `P("data")`).

Parameters are replicated; every global batch is split along its first axis over the mesh. Each
process produces only the rows of a global batch that its devices hold (`process_rows`) and
`to_global` assembles the global `jax.Array` with `jax.make_array_from_process_local_data`, so the
same code runs on one process (where the local rows are the whole batch) and on many (after
`dirjax.distributed.initialize`; see docs/multihost.md).
"""

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(shape: Sequence[int] = (-1,), axes: Sequence[str] = (DATA_AXIS,)) -> Mesh:
  """Mesh over the devices; one `-1` entry in `shape` takes all remaining devices (a smaller
  explicit shape uses the first devices of a single process, e.g. `(1,)` for one device).

  Axes are `AxisType.Auto` (GSPMD propagation inside the jitted step). The batch is split over the
  `"data"` axis, which must be present.
  """
  shape, axes = tuple(int(s) for s in shape), tuple(axes)
  if len(shape) != len(axes):
    raise ValueError(f"mesh.shape {shape} and mesh.axes {axes} differ in length")
  if DATA_AXIS not in axes:
    raise ValueError(f"mesh.axes {axes} must contain {DATA_AXIS!r}")
  n = jax.device_count()
  if shape.count(-1) > 1:
    raise ValueError(f"mesh.shape {shape} has more than one -1")
  if -1 in shape:
    rest = int(np.prod([s for s in shape if s != -1]))
    if rest <= 0 or n % rest:
      raise ValueError(f"mesh.shape {shape} does not divide the {n} devices")
    shape = tuple(n // rest if s == -1 else s for s in shape)
  size = int(np.prod(shape))
  if size > n or (size < n and jax.process_count() > 1):
    raise ValueError(f"mesh.shape {shape} needs {size} devices, have {n}")
  return jax.make_mesh(shape, axes, axis_types=(AxisType.Auto,) * len(axes), devices=jax.devices()[:size])


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Batch-axis sharding over the data axis (remaining dimensions replicated)."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh, name: str = "batch_size") -> None:
  """A global batch must split evenly over the data axis and over the processes."""
  shards = mesh.shape[DATA_AXIS]
  if batch_size <= 0 or batch_size % shards or batch_size % jax.process_count():
    raise ValueError(f"{name}={batch_size} must be a positive multiple of the data-axis size "
                     f"{shards} and of the process count {jax.process_count()}")


def process_rows(global_batch_size: int, mesh: Mesh) -> np.ndarray:
  """Global row indices of every batch that this process's devices hold under `data_sharding(mesh)`,
  ascending: the order in which `jax.make_array_from_process_local_data` places the local rows.

  Read off the sharding rather than assumed contiguous per process: a TPU slice's topology-ordered
  mesh can interleave the processes' devices along the data axis.
  """
  index = data_sharding(mesh).addressable_devices_indices_map((global_batch_size,))
  blocks = sorted({rows[0].indices(global_batch_size)[:2] for rows in index.values()})
  return np.concatenate([np.arange(start, stop) for start, stop in blocks])


def to_global(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles global arrays sharded as `P("data")` from this process's rows."""
  sharding = data_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}


def to_host(x: Any) -> Any:
  """Full numpy copy of (a pytree of) global arrays on every process."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    return multihost_utils.process_allgather(x, tiled=True)
  return jax.tree.map(np.asarray, x)


def needs_step_sync(mesh: Mesh) -> bool:
  """XLA:CPU collectives over several devices of one process can deadlock when steps are
  dispatched asynchronously (seen with jax 0.10 on 4 fake CPU devices); the trainer then blocks after each step."""
  return mesh.devices.flat[0].platform == "cpu" and mesh.size > 1
