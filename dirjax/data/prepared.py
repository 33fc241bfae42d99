"""Prepared image splits: each image decoded and resized once, stored as raw uint8 pixels in
ArrayRecord files that grain reads by index.

Why this format: ArrayRecord (the `array_record` package, already a grain dependency) gives random
access by record index without TensorFlow, and `grain.sources.ArrayRecordDataSource` reads a list of
shard files as one source, so shuffled epochs and exact resume work as with the on-the-fly source.
Records hold the raw `[size, size, 3]` uint8 pixels that `images.load_rgb` returns (PIL decode +
bilinear resize, as the reference), so a read is a copy and the pixels equal the on-the-fly path
exactly (a JPEG re-encode would be smaller but lossy). At 224² that is 150,528 bytes per image:
≈ 2.5 GB for AgeDB-DIR's 16,488 images, ≈ 32 GB for IMDB-WIKI-DIR's 213,553.

Preparation writes shards of `shard_rows` images to a temporary name and renames them when
complete, so an interrupted run resumes at the first missing shard. Missing and corrupt files are
collected over the whole run (their shards are not written) and all named together at the end.

Each split also gets a manifest `<out_prefix>.json` (image size, row count, a SHA-256 of the split's
file list, `complete`), written before the first shard and completed after the last: `open_split`
refuses a cache that is missing, unfinished, of another image size or prepared from other split files,
and `prepare_split` refuses to resume into a folder prepared for another split.
"""

import glob
import hashlib
import json
import os
from collections.abc import Callable

import grain
import numpy as np
from array_record.python import array_record_module

from dirjax.data import images


def shard_paths(out_prefix: str, num_rows: int, shard_rows: int) -> list[str]:
  count = max(1, -(-num_rows // shard_rows))
  return [f"{out_prefix}-{i:05d}-of-{count:05d}.array_record" for i in range(count)]


def _fingerprint(paths: list[str]) -> str:
  return hashlib.sha256("\n".join(paths).encode()).hexdigest()


def _read_manifest(out_prefix: str) -> dict | None:
  try:
    with open(out_prefix + ".json") as f:
      return json.load(f)
  except FileNotFoundError:
    return None


def _write_manifest(out_prefix: str, paths: list[str], size: int, complete: bool) -> None:
  manifest = {"size": size, "rows": len(paths), "paths_sha256": _fingerprint(paths), "complete": complete}
  with open(out_prefix + ".json.tmp", "w") as f:
    json.dump(manifest, f)
  os.replace(out_prefix + ".json.tmp", out_prefix + ".json")


def _mismatch(manifest: dict, paths: list[str], size: int) -> str | None:
  """Why a manifest does not describe `paths` at `size`, or None."""
  if manifest["size"] != size:
    return f"it holds {manifest['size']}² images, not {size}² (data.img_size)"
  if manifest["rows"] != len(paths) or manifest["paths_sha256"] != _fingerprint(paths):
    return (f"it was prepared from other split files ({manifest['rows']} rows, not the {len(paths)} image paths "
            "of this split in this CSV)")
  return None


def prepare_split(root: str, paths: list[str], size: int, out_prefix: str, *, shard_rows: int = 1000,
                  progress: Callable[[str], None] = print) -> list[str]:
  """Decodes + resizes `root/paths[i]` to `size`² into ArrayRecord shards `out_prefix-*`; returns their paths."""
  missing = set(images.missing_files(root, paths))
  shards = shard_paths(out_prefix, len(paths), shard_rows)
  os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
  manifest = _read_manifest(out_prefix)
  if manifest is not None and (reason := _mismatch(manifest, paths, size)):
    raise ValueError(f"{out_prefix}.json: cannot resume into this prepared split: {reason}; delete {out_prefix}* "
                     "or choose another output folder")
  _write_manifest(out_prefix, paths, size, complete=False)
  corrupt = []
  for i, shard in enumerate(shards):
    if os.path.exists(shard):
      continue
    rows, pixels = paths[i * shard_rows:(i + 1) * shard_rows], []
    for path in rows:
      if path in missing:
        continue
      try:
        pixels.append(images.load_rgb(os.path.join(root, path), size))
      except ValueError:
        corrupt.append(path)
    if len(pixels) < len(rows):
      continue
    writer = array_record_module.ArrayRecordWriter(shard + ".tmp", "group_size:1")
    for image in pixels:
      writer.write(image.tobytes())
    writer.close()
    os.replace(shard + ".tmp", shard)
    progress(f"prepared {shard} ({min((i + 1) * shard_rows, len(paths))}/{len(paths)} images)")
  problems = [f"{len(found)} image(s) {what} under {root}: {', '.join(found)}"
              for what, found in (("missing", [p for p in paths if p in missing]), ("corrupt or unreadable", corrupt))
              if found]
  if problems:
    raise ValueError("; ".join(problems) + "; replace them and run the preparation again (finished shards are kept)")
  _write_manifest(out_prefix, paths, size, complete=True)
  return shards


def open_split(out_prefix: str, paths: list[str], targets: np.ndarray, size: int) -> "PreparedSource":
  """The `PreparedSource` of a split prepared by `prepare_split(root, paths, size, out_prefix)`; fails naming the
  manifest when the cache is missing, unfinished, of another size or of other split files."""
  fix = ("run `python -m scripts.prepare_data --dataset=... --data_dir=... --prepare_to="
         f"{os.path.dirname(out_prefix)} --img_size={size}` (it resumes an unfinished preparation)")
  manifest = _read_manifest(out_prefix)
  if manifest is None:
    raise FileNotFoundError(f"no prepared split at {out_prefix}.json; {fix}")
  if reason := _mismatch(manifest, paths, size):
    raise ValueError(f"prepared split {out_prefix}.json does not match the data config: {reason}; delete "
                     f"{out_prefix}* and {fix}")
  shards = [s for s in glob.glob(f"{glob.escape(out_prefix)}-*-of-*.array_record")]
  if not manifest["complete"] or not shards:
    raise ValueError(f"prepared split {out_prefix}.json is incomplete (preparation interrupted or stopped at a "
                     f"corrupt image); {fix}")
  return PreparedSource(sorted(shards), targets, size)


class PreparedSource:
  """grain random-access source over prepared shards: row i → uint8 `[size, size, 3]` image and its target."""

  def __init__(self, shards: list[str], targets: np.ndarray, size: int):
    self._records = grain.sources.ArrayRecordDataSource(shards)
    self._targets = np.asarray(targets, np.float32).reshape(len(targets), -1)
    self._shape = (size, size, 3)
    if len(self._records) != len(self._targets):
      raise ValueError(f"prepared shards {shards[0]}… hold {len(self._records)} images but the split has "
                       f"{len(self._targets)} rows; prepare the split again")

  def __len__(self) -> int:
    return len(self._targets)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    pixels = np.frombuffer(self._records[index], np.uint8).reshape(self._shape)
    return {"inputs": pixels, "targets": self._targets[index].copy()}
