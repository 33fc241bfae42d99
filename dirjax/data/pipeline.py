"""Batching: per-epoch shuffle, train augmentation, fixed global batches with padding + mask,
process-local reading and global `jax.Array` assembly.

Epoch `e` of a split is fully determined by `(seed, e)`: the order is
`default_rng([seed, e]).permutation(N)`, the last partial batch is filled by wrapping around to
the start of that order, and the padded rows carry `valid = False` (every loss, accumulation and
evaluation ignores them; they are real examples so BatchNorm batch statistics stay sane). The
augmentation RNG of an element is derived from (seed, epoch, position in the epoch) by grain's
`random_map`. So resuming at `(epoch, step)` rebuilds exactly the batches of an uninterrupted run.
With `two_views` (`config.data.two_views`, for ConR and Rank-N-Contrast) the augmentation runs twice
per element from that one RNG stream and the second result's inputs become `inputs_view2`: two
independent views of the same example with the same (first view's) targets, as reproducible as one.

Each process reads only its rows of every global batch (`sharding.process_rows`); batches are
placed with `sharding.to_global` on `NamedSharding(mesh, P("data"))`, with `prefetch` > 0
(`config.prefetch_to_device`) by a background thread that keeps that many batches ahead of the step
(`dirjax.data.prefetch`).

Deviation: the reference keeps the last partial batch smaller (`drop_last=False`); we keep shapes
static, so BatchNorm sees up to `batch_size - 1` repeated real rows in that one batch.
"""

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import grain
import jax
import numpy as np
from jax.sharding import Mesh

from dirjax import sharding
from dirjax.data import prefetch as prefetch_lib

Augment = Callable[[dict, np.random.Generator], dict]


class ArrayDataset(grain.MapDataset):
  """An in-memory split: a dict of equally long arrays, one element per row.

  Besides the element-wise `MapDataset` interface it has a vectorised `gather(indices)`, which the
  loader uses (when there is no per-element augmentation) to build a batch with one fancy index.
  """

  def __init__(self, arrays: dict[str, np.ndarray]):
    super().__init__()
    lengths = {k: len(v) for k, v in arrays.items()}
    if not arrays or len(set(lengths.values())) != 1:
      raise ValueError(f"ArrayDataset needs equally long arrays, got lengths {lengths}")
    self._arrays = {k: np.asarray(v) for k, v in arrays.items()}
    self._len = next(iter(lengths.values()))

  def __len__(self) -> int:
    return self._len

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    return {k: v[index % self._len] for k, v in self._arrays.items()}

  def __str__(self) -> str:
    return f"ArrayDataset(len={self._len}, keys={sorted(self._arrays)})"

  def gather(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[indices] for k, v in self._arrays.items()}


def _two_views(augment: Augment) -> Augment:
  def both(element: dict, rng: np.random.Generator) -> dict:
    first = augment(element, rng)
    second = augment(element, rng)
    return {**first, "inputs_view2": second["inputs"]}
  return both


def _epoch_seed(seed: int, epoch: int) -> int:
  return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class Loader:
  """Fixed-size global batches of one split: `loader(epoch, start_step)` yields dicts of global
  arrays (the element keys plus `valid`, a bool `[batch_size]` row mask, and with `positions=True`
  `position`, each row's int32 index in the epoch's order, which seeds augmentation on the device)."""

  def __init__(self, dataset: grain.MapDataset, *, batch_size: int, mesh: Mesh, shuffle: bool = False,
               seed: int = 0, augment: Augment | None = None, num_threads: int = 0, positions: bool = False,
               num_workers: int = 0, two_views: bool = False, prefetch: int = 0):
    if len(dataset) == 0:
      raise ValueError("cannot batch an empty split")
    if two_views:
      if augment is None:
        raise ValueError("data.two_views=True needs a training augmentation, but this dataset has none (e.g. "
                         "synthetic_images with data.augment=False): turn the augmentation on or two_views off")
      augment = _two_views(augment)
    sharding.check_batch_size(batch_size, mesh)
    self.dataset, self.batch_size, self.mesh = dataset, batch_size, mesh
    self.shuffle, self.seed, self.augment, self.num_threads = shuffle, seed, augment, num_threads
    self.positions, self.num_workers = positions, num_workers
    self.prefetch = prefetch_lib.check_size(prefetch)
    if num_workers < 0:
      raise ValueError(f"input_workers must be >= 0, got {num_workers}")
    self.steps_per_epoch = -(-len(dataset) // batch_size)

  def indices(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Global example indices `[steps, batch_size]` of an epoch and their `valid` mask."""
    n, total = len(self.dataset), self.steps_per_epoch * self.batch_size
    order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
    shape = (self.steps_per_epoch, self.batch_size)
    return np.resize(order, total).reshape(shape), (np.arange(total) < n).reshape(shape)

  def _local_batches(self, epoch: int) -> grain.MapDataset:
    """This process's rows of every batch of the epoch, as a grain dataset of numpy batches."""
    rows = sharding.process_rows(self.batch_size, self.mesh)
    index, valid = (a[:, rows] for a in self.indices(epoch))
    dataset = self.dataset  # the closures below hold no `self` (its mesh), so worker processes can unpickle them
    if self.augment is None and isinstance(dataset, ArrayDataset):
      batches = grain.MapDataset.range(self.steps_per_epoch).map(lambda s: dataset.gather(index[s]))
    else:
      elements = grain.MapDataset.source(index.ravel()).map(lambda i: dataset[int(i)])
      if self.augment is not None:
        elements = elements.random_map(self.augment, seed=_epoch_seed(self.seed, epoch))
      batches = elements.batch(index.shape[1])
    if not self.positions:
      return batches.map_with_index(lambda s, batch: {**batch, "valid": valid[s]})
    position = (np.arange(self.steps_per_epoch)[:, None] * self.batch_size + rows).astype(np.int32)
    return batches.map_with_index(lambda s, batch: {**batch, "valid": valid[s], "position": position[s]})

  def local_batch(self, epoch: int, step: int) -> dict[str, np.ndarray]:
    return self._local_batches(epoch)[step]

  def __call__(self, epoch: int, start_step: int = 0) -> Iterator[dict[str, jax.Array]]:
    """Batches `start_step, ...` of epoch `epoch`. Leaving the loop early (a stop, an exception) closes the
    reader: its threads (and worker processes) are shut down and pending reads cancelled, so none outlives the
    loop. With `num_workers` > 0 grain worker processes read the batches (`grain.MultiprocessingOptions`);
    with `prefetch` > 0 a thread reads and places the next `prefetch` batches during the current step."""
    return prefetch_lib.prefetch(self._global_batches(epoch, start_step), self.prefetch)

  def _global_batches(self, epoch: int, start_step: int) -> Iterator[dict[str, jax.Array]]:
    batches = self._local_batches(epoch)[start_step:].to_iter_dataset(read_options(self.num_threads))
    if self.num_workers:  # whole batches are read and assembled in the workers; order is kept
      batches = batches.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.num_workers, per_worker_buffer_size=2))
    batches = iter(batches)
    try:
      for batch in batches:
        yield sharding.to_global(batch, self.mesh)
    finally:
      batches.close()


def read_options(num_threads: int) -> grain.ReadOptions:
  """Bounded reader options: `num_threads` reader threads and 2 batches in flight per thread;
  0 reads each batch in the consuming thread when it is asked for. (Iterating a `MapDataset`
  without options uses grain's defaults, 16 threads and a 500-batch buffer.)"""
  if num_threads < 0:
    raise ValueError(f"input_threads must be >= 0, got {num_threads}")
  return grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=2 * num_threads)


def predict(predict_fn: Callable[[dict[str, jax.Array]], Any], loader: Loader) -> Any:
  """Runs `predict_fn` over one unshuffled pass and returns host predictions in split order,
  each example exactly once (padded rows dropped); a pytree of per-row arrays (e.g. a dict of
  predictions and uncertainties) comes back as the same pytree."""
  if loader.shuffle:
    raise ValueError("predict needs an unshuffled loader")
  with contextlib.closing(loader(0)) as batches:
    outputs = sharding.to_host([predict_fn(batch) for batch in batches])
  _, valid = loader.indices(0)
  return jax.tree.map(lambda *parts: np.concatenate(parts)[valid.ravel()], *outputs)
