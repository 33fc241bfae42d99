"""The age benchmarks' training transform on the device: uint8 batches in, normalised crops out.

Same definition as the host path (`dirjax.data.images`: torchvision's RandomCrop(224, padding=16)
with black padding, RandomHorizontalFlip(0.5), Normalize(0.5, 0.5)): `crop_flip_params` draws each
row's crop corner uniformly on [0, 2·padding]² and its flip with probability 1/2, from a key folded
from (seed, epoch, position in the epoch), so a resumed run draws the same crops; `augment` applies
them to a uint8 [B, H, W, C] batch in one jitted call. Shipping uint8 moves 4× fewer bytes to the
device than the host path's float32 batches, and the crop + flip + normalise leave the host.

The draws differ from the host path's numpy generator (a different RNG), not their distribution;
for the same corners and flips both paths give the same pixels (tests/test_device_augment.py).
"""

import jax
import jax.numpy as jnp
import numpy as np

from dirjax.data import images as host_images

PADDING = 16


def crop_flip_params(seed: int, epoch: jax.Array, positions: jax.Array, padding: int = PADDING):
  """Per-row `(top, left, flip)` for rows at `positions` [B] (int) of epoch `epoch`."""
  base = jax.random.fold_in(jax.random.key(seed), epoch)
  keys = jax.vmap(lambda p: jax.random.fold_in(base, p))(positions)
  corner = jax.vmap(lambda k: jax.random.randint(k, (2,), 0, 2 * padding + 1))(keys)
  flip = jax.vmap(lambda k: jax.random.bernoulli(jax.random.fold_in(k, 1)))(keys)
  return corner[:, 0], corner[:, 1], flip


# The host path's (x / 255 − 0.5) / 0.5 for every uint8 value: a lookup keeps the device's values
# bit-equal to the host's (XLA turns the division into a multiply, 1 ulp off for some values).
_NORMALISED = host_images.normalize(np.arange(256, dtype=np.uint8))


def normalize(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] → float32 [−1, 1], bit-equal to `dirjax.data.images.normalize`."""
  return jnp.asarray(_NORMALISED)[images.astype(jnp.int32)]


@jax.jit
def crop_flip(images: jax.Array, top: jax.Array, left: jax.Array, flip: jax.Array) -> jax.Array:
  """Normalised crops of a uint8 batch [B, H, W, C]: row b is the H×W window at (top_b, left_b) of
  the image padded by `PADDING` black pixels (−1 after normalising), mirrored where `flip_b`."""
  _, h, w, _ = images.shape
  padded = jnp.pad(normalize(images), ((0, 0), (PADDING, PADDING), (PADDING, PADDING), (0, 0)),
                   constant_values=-1.0)

  def one(image, t, l, f):
    window = jax.lax.dynamic_slice(image, (t, l, 0), (h, w, image.shape[-1]))
    return jnp.where(f, window[:, ::-1], window)

  return jax.vmap(one)(padded, top, left, flip)


@jax.jit
def augment(images: jax.Array, seed: int, epoch: jax.Array, positions: jax.Array) -> jax.Array:
  """`crop_flip` with the draws of `crop_flip_params(seed, epoch, positions)`."""
  return crop_flip(images, *crop_flip_params(seed, epoch, positions))


def transform(batch: dict, augment_seed: int | None, epoch: jax.Array) -> dict:
  """`DataBundle.device_transform` of prepared age splits: uint8 `inputs` → normalised float32, cropped and
  flipped from (augment_seed, epoch, `batch["position"]`) when `augment_seed` is not None; `position` is dropped."""
  batch = dict(batch)
  positions = batch.pop("position", None)
  if augment_seed is None:
    return {**batch, "inputs": normalize(batch["inputs"])}
  return {**batch, "inputs": augment(batch["inputs"], augment_seed, epoch, positions)}
