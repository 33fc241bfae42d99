"""IMDB-WIKI-DIR (Yang et al. 2021): `imdb_wiki.csv` + the IMDB-WIKI face crops; implementation in `age.py`.

`imdb_wiki.csv` (absent from the reference snapshot) is rebuilt from the crops' `imdb.mat` /
`wiki.mat` by `create_table` = the reference `create_imdb_wiki.py` + `make_balanced_testset`
(`imdb-wiki-dir/data/create_imdb_wiki.py` and `preprocess_imdb_wiki.py` of YyzHarry/imbalanced-regression).
"""

import os
from typing import Any

import numpy as np
import pandas as pd

from dirjax.data import DataBundle, age

BENCHMARK = age.AgeBenchmark(
  name="IMDB-WIKI-DIR",
  csv="imdb_wiki.csv",
  images="imdb_crop",
  source=("face crops imdb_crop.tar and wiki_crop.tar (each with its imdb.mat / wiki.mat) from ETH "
          "Zurich, https://data.vision.ee.ethz.ch/cvl/rrothe/imdb-wiki/"),
)
DATABASES = ("imdb", "wiki")  # concatenated in this order
MAX_SPLIT_SIZE = 150  # make_balanced_testset(max_size=150) for IMDB-WIKI


def get_data(config: Any, *, seed: int) -> DataBundle:
  """IMDB-WIKI-DIR `DataBundle` (see `age.get_data`)."""
  return age.get_data(config, seed=seed, benchmark=BENCHMARK)


def age_at_photo(dob: np.ndarray, photo_taken: np.ndarray) -> np.ndarray:
  """Age = photo year − birth year, minus 1 when born in July or later (photo assumed mid-year).

  The birth date is the Matlab datenum `dob` read as Python's `date.fromordinal(max(int(dob) − 366, 1))`,
  computed here with numpy datetimes (ordinal 1 = 0001-01-01).
  """
  ordinal = np.maximum(np.trunc(np.asarray(dob, np.float64)).astype(np.int64) - 366, 1)
  birth = np.datetime64("0001-01-01", "D") + (ordinal - 1)
  year = birth.astype("datetime64[Y]").astype(np.int64) + 1970
  month = birth.astype("datetime64[M]").astype(np.int64) % 12 + 1
  return np.asarray(photo_taken, np.int64) - year - (month >= 7)


def read_mat(mat_path: str, db: str, min_score: float = 1.0) -> pd.DataFrame:
  """`age,path` rows of one IMDB-WIKI .mat, filtered as the reference.

  Keeps a face when face_score ≥ min_score, second_face_score is NaN or ≤ 0, and 0 ≤ age ≤ 200;
  paths get the `<db>_crop/` prefix.
  """
  from scipy.io import loadmat
  if not os.path.isfile(mat_path):
    raise FileNotFoundError(f"{mat_path} not found ({BENCHMARK.source})")
  meta = loadmat(mat_path)
  if db not in meta:
    raise ValueError(f"{mat_path} has no {db!r} struct (keys: {sorted(k for k in meta if not k.startswith('__'))})")
  record = meta[db][0, 0]

  def field(name):
    return np.asarray(record[name]).ravel()

  paths = np.array([str(np.asarray(p).ravel()[0]) for p in field("full_path")], dtype=object)
  ages = age_at_photo(field("dob"), field("photo_taken"))
  face_score = field("face_score").astype(np.float64)
  second = field("second_face_score").astype(np.float64)
  with np.errstate(invalid="ignore"):
    keep = ~(face_score < min_score) & ~(~np.isnan(second) & (second > 0.0)) & (ages >= 0) & (ages <= 200)
  return pd.DataFrame({"age": ages[keep], "path": [f"{db}_crop/{p}" for p in paths[keep]]})


def create_table(data_dir: str, out_csv: str | None = None, min_score: float = 1.0,
                 max_size: int = MAX_SPLIT_SIZE, seed: int = 666) -> pd.DataFrame:
  """Writes `imdb_wiki.csv` (`age,path,split`) from `<data_dir>/{imdb,wiki}_crop/{imdb,wiki}.mat`."""
  tables = [read_mat(os.path.join(data_dir, f"{db}_crop", f"{db}.mat"), db, min_score) for db in DATABASES]
  table = pd.concat(tables, ignore_index=True)
  out_csv = out_csv or os.path.join(data_dir, BENCHMARK.csv)
  return age.write_split_table(out_csv, table["age"].to_numpy(), table["path"].tolist(), max_size, seed)


def prepare(data_dir: str) -> None:
  """Checks `data_dir`; builds imdb_wiki.csv from the .mat files when it is missing.

  Raises `FileNotFoundError` naming every missing file (CSV/.mat, image folders, images).
  """
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(f"IMDB-WIKI-DIR data_dir {data_dir} does not exist ({BENCHMARK.source})")
  csv_path = os.path.join(data_dir, BENCHMARK.csv)
  if not os.path.isfile(csv_path):
    mats = [os.path.join(data_dir, f"{db}_crop", f"{db}.mat") for db in DATABASES]
    missing = [m for m in mats if not os.path.isfile(m)]
    if missing:
      raise FileNotFoundError(
        f"{csv_path} is missing and cannot be rebuilt without {', '.join(missing)} "
        f"({BENCHMARK.source})")
    table = create_table(data_dir, csv_path)
    print(f"built {csv_path} from {', '.join(mats)}: {len(table)} faces")
  age.check_prepared(data_dir, BENCHMARK, BENCHMARK.csv)
