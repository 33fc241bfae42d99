"""Age-from-face benchmarks (IMDB-WIKI-DIR, AgeDB-DIR): one implementation, two registry names.

Data = the original split CSV (`age,path,split`, upstream `agedb-dir/data/agedb.csv` / `imdb_wiki.csv`) + the
user's face images under `data_dir` (paths in the CSV are relative to it). Elements are
`{"inputs": float32 [S, S, 3] in [−1, 1], "targets": float32 [1]}` (pipeline in `images.py`).

Why a plain grain random-access source over the original files rather than a TFDS array_record
builder: without TensorFlow, TFDS can only store images as raw `Tensor` features (no JPEG
encoding), i.e. 150 kB per 224² image — 29 GB for IMDB-WIKI, 2.5 GB for AgeDB — written once
before the first run, while decoding the original JPEGs (≈4 kB AgeDB, ≈20 kB IMDB crops) costs a
few ms per image and parallelises over grain workers. The source is a small picklable object
(paths + labels), so grain worker processes receive it cheaply.

Labels (integer ages) drive: LDS / inverse weights on `Binning(max_target)` = integer ages with
ages ≥ max_target − 1 pooled into the last bin (`max_target=121`, `_prepare_weights` in
`agedb-dir/datasets.py`); FDS buckets = the age itself, `bucket_num` 100, `bucket_start` 0 (IMDB-WIKI)
/ 3 (AgeDB) (the `FDS` arguments of `agedb-dir/train.py`); evaluation = DIR shot
metrics (many > 100, few < 20 training samples) + Balanced-MSE balanced metrics.

SMOTER / SMOGN (`config.resample.method`, DIR paper Tables 1–2): the training split is replaced
by a `smogn.resample_plan` over the training faces, interpolated in pixel space as the DIR
maintainers describe. Neighbours are searched on `resample.thumbnail`² RGB thumbnails (deviation:
the full 224² images would make the search 200× more expensive for the same neighbours in
practice); the synthetic faces are built at full size when read (`ResampledAgeSource`).
Shot groups still come from the original training labels.

Prepared splits (`config.prepared_dir`, written by `scripts/prepare_data.py --prepare_to`): every split is
read from its uint8 `img_size`² ArrayRecord cache (`dirjax.data.prepared`) instead of the JPEGs, and the
normalisation, pad-16 crop and flip run on the device inside the jitted steps
(`DataBundle.device_transform` = `dirjax.data.device_augment.transform`); the images under `data_dir`
are then not read (the CSV still is). Same pixels as the on-the-fly path; the crops and flips are
drawn by a different RNG with the same distribution. Not combined with SMOTER / SMOGN.
"""

import concurrent.futures
import dataclasses
import os
from typing import Any

import grain
import numpy as np
import pandas as pd

from dirjax import weighting
from dirjax.data import DataBundle, device_augment, images, prepared, protocols, scalar_evaluator, smogn

SPLITS = ("train", "val", "test")
LABEL_RANGE = (0.0, 200.0)  # create_imdb_wiki keeps 0 <= age <= 200
CSV_COLUMNS = ("age", "path", "split")
MAX_LISTED = 20  # missing images named in an error message


@dataclasses.dataclass(frozen=True)
class AgeBenchmark:
  """Where a benchmark's files come from (used in error messages and `prepare`)."""
  name: str
  csv: str
  images: str
  source: str


def read_split_table(csv_path: str, label_range: tuple[float, float]) -> pd.DataFrame:
  """Reads and validates an `age,path,split` CSV; bad rows fail naming the CSV line."""
  if not os.path.isfile(csv_path):
    raise FileNotFoundError(f"split file {csv_path} not found")
  table = pd.read_csv(csv_path)
  missing_cols = [c for c in CSV_COLUMNS if c not in table.columns]
  if missing_cols:
    raise ValueError(f"{csv_path} lacks column(s) {missing_cols}; expected columns {list(CSV_COLUMNS)}")
  ages = pd.to_numeric(table["age"], errors="coerce").to_numpy(np.float64)
  low, high = label_range
  bad = ~np.isfinite(ages) | (ages < low) | (ages > high)
  if bad.any():
    row = int(np.flatnonzero(bad)[0])
    raise ValueError(
      f"{csv_path} line {row + 2} ({table['path'].iloc[row]}): age {table['age'].iloc[row]!r} is NaN, "
      f"not a number or outside [{low}, {high}] ({int(bad.sum())} bad row(s) in total)")
  unknown = sorted(set(table["split"].astype(str)) - set(SPLITS))
  if unknown:
    raise ValueError(f"{csv_path}: unknown split value(s) {unknown}; expected {list(SPLITS)}")
  empty = [s for s in SPLITS if not (table["split"] == s).any()]
  if empty:
    raise ValueError(f"{csv_path} has no rows for split(s) {empty}")
  table["age"] = ages.astype(np.float32)
  return table


class AgeImageSource:
  """grain random-access source: row i → decoded, resized, normalised image and its age."""

  def __init__(self, root: str, paths: list[str], ages: np.ndarray, img_size: int):
    self._root = root
    self._paths = list(paths)
    self._ages = np.asarray(ages, np.float32).reshape(-1, 1)
    self._img_size = img_size

  def __len__(self) -> int:
    return len(self._paths)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    image = images.load_rgb(os.path.join(self._root, self._paths[index]), self._img_size)
    return {"inputs": images.normalize(image), "targets": self._ages[index].copy()}

  def __repr__(self) -> str:
    return f"AgeImageSource({self._root!r}, n={len(self)}, size={self._img_size})"


class ResampledAgeSource:
  """grain source of a SMOTER / SMOGN training set: the plan's kept faces, then its synthetic ones.

  A synthetic face is x_s + u·(x_nn − x_s) of two normalised full-size faces, or for SMOGN's
  Gaussian examples x_s + t·std_bump·ε with ε drawn from (seed, index) (reproducible per element,
  as grain needs); its target is the plan's. See `dirjax.data.smogn`.
  """

  def __init__(self, originals: AgeImageSource, plan: smogn.ResamplePlan, bump_std: dict[int, np.ndarray],
               seed: int):
    self._originals = originals
    self._plan = plan
    self._bump_std = bump_std
    self._seed = seed

  def __len__(self) -> int:
    return self._plan.num_examples

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    plan = self._plan
    if index < len(plan.kept):
      return self._originals[int(plan.kept[index])]
    j = index - len(plan.kept)
    seed_face = self._originals[int(plan.seeds[j])]["inputs"]
    if plan.noise[j] > 0:
      eps = np.random.default_rng((self._seed, j)).standard_normal(seed_face.shape, dtype=np.float32)
      face = seed_face + np.float32(plan.noise[j]) * self._bump_std[int(plan.bump[j])] * eps
    else:
      partner = self._originals[int(plan.partners[j])]["inputs"]
      face = seed_face + np.float32(plan.lam[j]) * (partner - seed_face)
    return {"inputs": face.astype(np.float32), "targets": np.array([plan.targets[j]], np.float32)}

  def __repr__(self) -> str:
    return f"ResampledAgeSource({self._originals!r}, n={len(self)})"


def resample_train_split(originals: AgeImageSource, thumbnails: AgeImageSource, ages: np.ndarray,
                         options: Any, seed: int) -> tuple[ResampledAgeSource, np.ndarray]:
  """SMOTER / SMOGN over the training faces → (source, its labels); neighbours on `thumbnails`
  (the same faces at `options.thumbnail`²)."""
  with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
    thumbs = list(pool.map(lambda i: thumbnails[i]["inputs"], range(len(thumbnails))))
  plan = smogn.resample_plan(np.stack(thumbs).reshape(len(thumbs), -1), ages, options.method, k=options.k,
                             pert=options.pert, threshold=options.threshold, seed=seed)
  bump_std = {}  # per-pixel std of each bump with Gaussian examples, at full size (streamed, float64)
  for b in np.unique(plan.bump[plan.noise > 0]):
    total = squares = 0.0
    for i in plan.bump_members[b]:
      face = originals[int(i)]["inputs"].astype(np.float64)
      total, squares = total + face, squares + face * face
    n = len(plan.bump_members[b])
    bump_std[int(b)] = np.sqrt(np.maximum(squares / n - (total / n) ** 2, 0.0)).astype(np.float32)
  labels = np.concatenate([ages[plan.kept], plan.targets]).astype(np.float32)
  return ResampledAgeSource(originals, plan, bump_std, seed), labels


def check_images(data_dir: str, csv_name: str, paths: list[str], benchmark: AgeBenchmark) -> None:
  """Fails with a message naming the missing images (count + first few) and where to get them."""
  missing = images.missing_files(data_dir, paths)
  if missing:
    shown = ", ".join(missing[:MAX_LISTED])
    more = f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
    raise FileNotFoundError(
      f"{len(missing)} of {len(paths)} images listed in {csv_name} are missing under {data_dir}: "
      f"{shown}{more}. {benchmark.name} images: {benchmark.source}; unpack them so that "
      f"{os.path.join(data_dir, benchmark.images)} exists (see scripts/prepare_data.py).")


def split_file(config: Any, benchmark: AgeBenchmark) -> str:
  """`config.csv`, or `protocols/<file>` for `config.protocol` (AgeDB-DIR only, `dirjax.data.protocols`)."""
  name = config.get("protocol", "")
  if not name:
    return config.csv
  if benchmark.name != "AgeDB-DIR":
    raise ValueError(f"data.protocol={name!r}: the stress-test protocols resample AgeDB-DIR only, not {benchmark.name}")
  return os.path.join("protocols", protocols.get(name).file)


def load_table(config: Any, benchmark: AgeBenchmark, *, check_files: bool = True) -> tuple[str, pd.DataFrame]:
  """Validates `data_dir`, the CSV and (with `check_files`) the images of `config`; returns (data_dir, table)."""
  csv = split_file(config, benchmark)
  data_dir = os.path.abspath(os.path.expanduser(config.data_dir))
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(
      f"{benchmark.name} data_dir {data_dir} does not exist; it must hold {csv} and "
      f"{benchmark.images}/ ({benchmark.source}; see scripts/prepare_data.py)")
  csv_path = os.path.join(data_dir, csv)
  if not os.path.isfile(csv_path):
    where = (f"the protocol files of noah-puetz/deconstructing_deep_imbalanced_regression data/ copied into "
             f"{os.path.join(data_dir, 'protocols')}" if csv != config.csv else
             f"{benchmark.csv} ({benchmark.source}; see scripts/prepare_data.py)")
    raise FileNotFoundError(f"split file {csv_path} not found; {benchmark.name} needs {where}")
  table = read_split_table(csv_path, tuple(config.label_range))
  if check_files:
    check_images(data_dir, csv, table["path"].tolist(), benchmark)
  return data_dir, table


def get_data(config: Any, *, seed: int, benchmark: AgeBenchmark) -> DataBundle:
  """DataBundle of an age benchmark (contract in docs/architecture.md); `seed` drives SMOTER / SMOGN only."""
  prepared_dir = config.get("prepared_dir", "")
  if prepared_dir and config.resample.method:
    raise ValueError(f"data.prepared_dir={prepared_dir!r} cannot be combined with data.resample.method="
                     f"{config.resample.method!r} (SMOTER / SMOGN build faces from the original images); set one")
  data_dir, table = load_table(config, benchmark, check_files=not prepared_dir)
  labels = {s: table.loc[table["split"] == s, "age"].to_numpy(np.float32) for s in SPLITS}
  paths = {s: table.loc[table["split"] == s, "path"].tolist() for s in SPLITS}
  if prepared_dir:
    prepared_dir = os.path.abspath(os.path.expanduser(prepared_dir))
    sources = {s: prepared.open_split(os.path.join(prepared_dir, s), paths[s], labels[s], config.img_size)
               for s in SPLITS}
  else:
    sources = {s: AgeImageSource(data_dir, paths[s], labels[s], config.img_size) for s in SPLITS}
  train_labels = labels["train"]
  if config.resample.method:
    thumbnails = AgeImageSource(data_dir, paths["train"], labels["train"], config.resample.thumbnail)
    sources["train"], train_labels = resample_train_split(
      sources["train"], thumbnails, labels["train"], config.resample, seed)
  splits = {s: grain.MapDataset.source(source) for s, source in sources.items()}
  binning = weighting.Binning(num_bins=config.max_target)
  # Shots and balanced metrics use the exact integer age (reference `shot_metrics`), so the
  # evaluation bins span every valid age instead of pooling ages >= max_target - 1 like `binning`.
  exact_ages = weighting.Binning(num_bins=int(config.label_range[1]) + 1)
  return DataBundle(
    splits=splits,
    train_augment=None if prepared_dir else images.train_augment,
    device_transform=device_augment.transform if prepared_dir else None,
    train_labels=train_labels,
    binning=binning,
    fds_buckets={"bucket_num": config.bucket_num, "bucket_start": config.bucket_start,
                 "bucketing": "integer", "edge_pooling": "presence"},
    evaluate=scalar_evaluator({**labels, "train": train_labels}, labels["train"], exact_ages,
                              many_shot_thr=config.many_shot_thr, low_shot_thr=config.low_shot_thr,
                              relevance_points=config.get("relevance_points") or None,
                              ranges=protocols.get(config.protocol).ranges if config.get("protocol") else None),
    split_targets={s: y[:, None] for s, y in {**labels, "train": train_labels}.items()},
  )


def balanced_split(ages: np.ndarray, paths: list[str], max_size: int, seed: int = 666) -> np.ndarray:
  """`make_balanced_testset` of the reference (`data/preprocess_agedb.py`) → split name per row.

  Ages are truncated to int; Python's `random` is seeded once with `seed`, then for each age
  0..120 in turn that age's paths (in file order) are shuffled with `random.shuffle`,
  c = min(len // 3, max_size), the first c go to val, the next c to test; everything else
  (including ages > 120) is train. Same input order and seed → the reference's split.
  """
  import random
  ages = np.asarray(ages).astype(np.int64)
  paths = np.asarray(paths, dtype=object)
  rng = random.Random(seed)
  assignment: dict[str, str] = {}
  for age in range(121):
    members = list(paths[ages == age])
    rng.shuffle(members)
    size = min(len(members) // 3, max_size)
    assignment.update({p: "val" for p in members[:size]})
    assignment.update({p: "test" for p in members[size:2 * size]})
  return np.array([assignment.get(p, "train") for p in paths], dtype=object)


def write_split_table(path: str, ages: np.ndarray, paths: list[str], max_size: int, seed: int = 666) -> pd.DataFrame:
  """Writes the `age,path,split` CSV of `balanced_split` to `path` and returns it."""
  table = pd.DataFrame({"age": np.asarray(ages).astype(np.int64), "path": list(paths)})
  table["split"] = balanced_split(table["age"].to_numpy(), table["path"].tolist(), max_size, seed)
  table.to_csv(path, index=False)
  return table


def check_prepared(data_dir: str, benchmark: AgeBenchmark, csv_name: str) -> pd.DataFrame:
  """Checks a user's data folder (CSV + every image), raising with every problem found."""
  from ml_collections import ConfigDict
  config = ConfigDict({"data_dir": data_dir, "csv": csv_name, "label_range": LABEL_RANGE})
  _, table = load_table(config, benchmark)
  counts = table["split"].value_counts()
  print(f"{benchmark.name}: {os.path.abspath(data_dir)} is ready: "
        + ", ".join(f"{s} {counts.get(s, 0)}" for s in SPLITS) + " images.")
  return table
