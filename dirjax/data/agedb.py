"""AgeDB-DIR (Yang et al. 2021): `agedb.csv` + the AgeDB face images; implementation in `age.py`."""

import glob
import os
from typing import Any

from dirjax.data import DataBundle, age

BENCHMARK = age.AgeBenchmark(
  name="AgeDB-DIR",
  csv="agedb.csv",
  images="AgeDB",
  source=("AgeDB images from the AgeDB authors, https://ibug.doc.ic.ac.uk/resources/agedb/ "
          "(password-protected zip, the password is sent by the authors on request); agedb.csv "
          "from YyzHarry/imbalanced-regression agedb-dir/data/agedb.csv"),
)
MAX_SPLIT_SIZE = 30  # make_balanced_testset(max_size=30) for AgeDB


def get_data(config: Any, *, seed: int) -> DataBundle:
  """AgeDB-DIR `DataBundle` (see `age.get_data`)."""
  return age.get_data(config, seed=seed, benchmark=BENCHMARK)


def age_from_filename(path: str) -> int:
  """AgeDB file names are `<id>_<Name>_<age>_<gender>.jpg`."""
  try:
    return int(os.path.basename(path).rsplit("_", 2)[-2])
  except (IndexError, ValueError) as e:
    raise ValueError(f"AgeDB file name {path!r} is not <id>_<name>_<age>_<gender>.jpg") from e


def prepare(data_dir: str) -> None:
  """Checks `data_dir` for agedb.csv + AgeDB/*.jpg; without the CSV, builds one from the file names.

  A rebuilt CSV follows `create_agedb` + `make_balanced_testset(max_size=30, seed=666)`, but its
  split only equals the official one if the files are listed in the authors' original order, so
  the official agedb.csv should be preferred for comparable numbers (a warning says so).
  """
  csv_path = os.path.join(data_dir, BENCHMARK.csv)
  if os.path.isdir(data_dir) and not os.path.isfile(csv_path):
    files = sorted(glob.glob(os.path.join(data_dir, BENCHMARK.images, "*.jpg")))
    if files:
      paths = [os.path.relpath(f, data_dir) for f in files]
      age.write_split_table(csv_path, [age_from_filename(p) for p in paths], paths, MAX_SPLIT_SIZE)
      print(f"WARNING: {csv_path} was missing and has been rebuilt from {len(paths)} file names; its "
            f"val/test split differs from the official agedb.csv ({BENCHMARK.source}).")
  age.check_prepared(data_dir, BENCHMARK, BENCHMARK.csv)
