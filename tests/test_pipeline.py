"""Batching: padding + mask, per-epoch shuffles, exact resumption, augmentation RNG, prediction order."""

import grain
import jax
import numpy as np
import pytest

from dirjax import sharding
from dirjax.data import pipeline


@pytest.fixture
def mesh():
  return sharding.make_mesh()  # 4 fake CPU devices (conftest)


def _dataset(n: int = 10) -> pipeline.ArrayDataset:
  return pipeline.ArrayDataset({"inputs": np.arange(n, dtype=np.float32)[:, None] * 10,
                                "targets": np.arange(n, dtype=np.float32)[:, None]})


def _host(batch):
  return {k: np.asarray(v) for k, v in batch.items()}


def test_padded_epoch_covers_every_example_once(mesh):
  loader = pipeline.Loader(_dataset(10), batch_size=4, mesh=mesh, shuffle=True, seed=3)
  assert loader.steps_per_epoch == 3
  batches = [_host(b) for b in loader(epoch=0)]
  assert all(b["targets"].shape == (4, 1) for b in batches)
  valid = np.concatenate([b["valid"] for b in batches])
  seen = np.concatenate([b["targets"][:, 0] for b in batches])[valid]
  assert valid.sum() == 10 and not valid[-2:].any()
  np.testing.assert_array_equal(np.sort(seen), np.arange(10))
  np.testing.assert_array_equal(np.concatenate([b["inputs"][:, 0] for b in batches]),
                                10 * np.concatenate([b["targets"][:, 0] for b in batches]))


def test_shuffle_is_per_epoch_and_reproducible(mesh):
  make = lambda seed: pipeline.Loader(_dataset(40), batch_size=8, mesh=mesh, shuffle=True, seed=seed)
  order = lambda loader, e: np.concatenate([_host(b)["targets"][:, 0] for b in loader(e)])
  a, b = make(0), make(0)
  np.testing.assert_array_equal(order(a, 1), order(b, 1))
  assert not np.array_equal(order(a, 0), order(a, 1))
  assert not np.array_equal(order(a, 0), order(make(1), 0))
  assert not np.array_equal(order(a, 0), np.arange(40))


def test_resuming_mid_epoch_rebuilds_the_same_batches(mesh):
  flip = lambda element, rng: {**element, "inputs": element["inputs"] + rng.normal()}
  make = lambda: pipeline.Loader(_dataset(12), batch_size=4, mesh=mesh, shuffle=True, seed=5, augment=flip)
  full = [_host(b) for b in make()(2)]
  resumed = [_host(b) for b in make()(2, start_step=1)]
  assert len(resumed) == 2
  for a, b in zip(full[1:], resumed):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  # The augmentation really drew random numbers, different per example.
  noise = np.concatenate([b["inputs"][:, 0] - 10 * b["targets"][:, 0] for b in full])
  assert len(np.unique(noise)) == len(noise)


def test_element_path_equals_vectorised_gather(mesh):
  arrays = _dataset(9)
  elements = grain.MapDataset.source([arrays[i] for i in range(9)])
  for epoch in range(2):
    a = [_host(b) for b in pipeline.Loader(arrays, batch_size=4, mesh=mesh, shuffle=True, seed=1)(epoch)]
    b = [_host(b) for b in pipeline.Loader(elements, batch_size=4, mesh=mesh, shuffle=True, seed=1)(epoch)]
    for x, y in zip(a, b, strict=True):
      for key in x:
        np.testing.assert_array_equal(x[key], y[key])


def test_prefetch_threads_keep_the_order(mesh):
  plain = [_host(b) for b in pipeline.Loader(_dataset(20), batch_size=4, mesh=mesh, shuffle=True)(0)]
  threaded = [_host(b) for b in pipeline.Loader(_dataset(20), batch_size=4, mesh=mesh, shuffle=True,
                                                num_threads=2)(0)]
  for x, y in zip(plain, threaded, strict=True):
    np.testing.assert_array_equal(x["targets"], y["targets"])


def test_predict_returns_each_example_once_in_order(mesh):
  loader = pipeline.Loader(_dataset(10), batch_size=8, mesh=mesh)
  preds = pipeline.predict(lambda batch: batch["inputs"] + 1, loader)
  np.testing.assert_array_equal(preds[:, 0], np.arange(10) * 10 + 1)
  with pytest.raises(ValueError, match="unshuffled"):
    pipeline.predict(lambda b: b["inputs"], pipeline.Loader(_dataset(10), batch_size=8, mesh=mesh, shuffle=True))


def test_global_batches_are_sharded(mesh):
  batch = next(pipeline.Loader(_dataset(8), batch_size=8, mesh=mesh)(0))
  assert isinstance(batch["inputs"], jax.Array)
  assert batch["inputs"].sharding == sharding.data_sharding(mesh)


def test_bad_inputs_fail_clearly(mesh):
  with pytest.raises(ValueError, match="equally long"):
    pipeline.ArrayDataset({"a": np.zeros(3), "b": np.zeros(4)})
  with pytest.raises(ValueError, match="empty split"):
    pipeline.Loader(grain.MapDataset.source([]), batch_size=4, mesh=mesh)
  with pytest.raises(ValueError, match="batch_size=6"):
    pipeline.Loader(_dataset(), batch_size=6, mesh=mesh)


class _CountingSource(grain.MapDataset):
  """Element reads are counted, so a test sees how far ahead the loader reads."""

  def __init__(self, n: int):
    super().__init__()
    self.n, self.reads = n, 0

  def __len__(self):
    return self.n

  def __getitem__(self, index):
    self.reads += 1
    return {"inputs": np.float32([index]), "targets": np.float32([index])}


@pytest.mark.parametrize("num_threads", [0, 1, 2])
def test_reader_reads_at_most_its_bounded_prefetch(mesh, num_threads):
  import threading
  import time
  source = _CountingSource(64)
  batches = pipeline.Loader(source, batch_size=4, mesh=mesh, num_threads=num_threads)(0)
  next(batches)
  time.sleep(0.3)  # let reader threads fill whatever buffer they have
  # the first batch plus 2 batches per reader thread, of 4 elements each (grain's default: all 16)
  assert source.reads <= 4 * (1 + 2 * num_threads)
  readers = [t for t in threading.enumerate() if t.name.startswith("grain-prefetch")]
  assert len(readers) <= num_threads
  batches.close()
  with pytest.raises(ValueError, match="input_threads"):
    pipeline.read_options(-1)


def _crops_and_flips(image: np.ndarray, padding: int, pad_value: float) -> np.ndarray:
  """Every RandomCrop(padding) window of `image` and its mirror, from an explicitly padded copy: [K, H, W, C]."""
  h, w, _ = image.shape
  padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)), constant_values=pad_value)
  windows = [padded[t:t + h, l:l + w] for t in range(2 * padding + 1) for l in range(2 * padding + 1)]
  return np.stack(windows + [x[:, ::-1] for x in windows])


def test_two_views_are_two_crops_of_the_same_image_with_its_target(mesh):
  """`two_views`: each row's `inputs` and `inputs_view2` are each one of the crop/flip windows of that row's
  own image (enumerated here from an explicitly padded copy), mostly different from each other, with the
  image's target; the batches repeat for the same (seed, epoch) and change with either."""
  from dirjax.data import images
  n, size = 12, 40  # 40 px > the 16-px padding: no window is all padding
  pictures = np.random.default_rng(0).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
  dataset = pipeline.ArrayDataset({"inputs": pictures, "targets": np.arange(n, dtype=np.float32)[:, None]})
  make = lambda seed: pipeline.Loader(dataset, batch_size=4, mesh=mesh, shuffle=True, seed=seed,
                                      augment=images.train_augment, two_views=True)
  epoch = lambda loader, e: [_host(b) for b in loader(e)]
  batches = epoch(make(7), 1)
  differ = 0
  for batch in batches:
    assert set(batch) == {"inputs", "inputs_view2", "targets", "valid"}
    for first, second, target in zip(batch["inputs"], batch["inputs_view2"], batch["targets"][:, 0]):
      candidates = _crops_and_flips(pictures[int(target)], padding=16, pad_value=-1.0)
      for view in (first, second):
        assert np.any(np.all(candidates == view, axis=(1, 2, 3))), f"a view of image {target} is not its crop/flip"
      differ += not np.array_equal(first, second)
  assert differ >= len(batches) * 4 - 1  # two independent draws of 33² × 2 windows: equal ~1 time in 2178
  again = epoch(make(7), 1)
  for a, b in zip(batches, again, strict=True):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  for other in (epoch(make(8), 1), epoch(make(7), 2)):
    # Rows of the same image (same target) in another seed or epoch get other windows.
    view_of = lambda bs: {int(t): v for b in bs for t, v in zip(b["targets"][:, 0], b["inputs_view2"])}
    mine, theirs = view_of(batches), view_of(other)
    assert sum(not np.array_equal(mine[t], theirs[t]) for t in mine) >= n - 1
