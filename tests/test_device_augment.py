"""The device-side training transform against the host path and an np.pad oracle."""

import jax.numpy as jnp
import numpy as np

from dirjax.data import device_augment, images


def test_same_corners_and_flips_give_the_host_paths_pixels():
  rng = np.random.default_rng(0)
  batch = rng.integers(0, 256, size=(7, 20, 18, 3), dtype=np.uint8)
  top = np.array([0, 32, 16, 5, 31, 0, 32])
  left = np.array([0, 32, 3, 16, 0, 32, 17])
  flip = np.array([False, True, True, False, True, False, True])
  device = np.asarray(device_augment.crop_flip(jnp.asarray(batch), top, left, flip))
  for b in range(len(batch)):
    host = images.crop_flip(images.normalize(batch[b]), top[b], left[b], flip[b])
    np.testing.assert_array_equal(device[b], host)
    # oracle: pad the uint8 image with black, cut the window, mirror, normalise
    window = np.pad(batch[b], ((16, 16), (16, 16), (0, 0)))[top[b]:top[b] + 20, left[b]:left[b] + 18]
    window = window[:, ::-1] if flip[b] else window
    np.testing.assert_allclose(device[b], window / 127.5 - 1.0, atol=1e-6)


def test_draws_are_uniform_corners_and_fair_flips_fixed_by_seed_epoch_position():
  positions = jnp.arange(6600)
  top, left, flip = (np.asarray(a) for a in device_augment.crop_flip_params(3, 1, positions))
  for corner in (top, left):
    counts = np.bincount(corner, minlength=33)
    assert len(counts) == 33 and counts.min() > 120 and counts.max() < 280  # 200 expected per value
  assert abs(flip.mean() - 0.5) < 0.03
  assert not np.array_equal(top, left)
  again = device_augment.crop_flip_params(3, 1, positions[100:110])
  np.testing.assert_array_equal(np.asarray(again[0]), top[100:110])  # a resumed epoch draws the same
  other_epoch = np.asarray(device_augment.crop_flip_params(3, 2, positions)[0])
  assert (other_epoch != top).mean() > 0.9
