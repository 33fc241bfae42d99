"""Checks (and where possible builds) the files a DIR benchmark reads, naming whatever is missing.

  python -m scripts.prepare_data --dataset=agedb_dir --data_dir=/data/agedb

Each benchmark module's `prepare(data_dir)` does the work: AgeDB-DIR / IMDB-WIKI-DIR check the
split CSV and every image (IMDB-WIKI rebuilds imdb_wiki.csv from imdb.mat / wiki.mat when it is
absent; AgeDB rebuilds agedb.csv from the file names, with a warning); NYUD2-DIR and STS-B-DIR
are handled by `dirjax.data.nyud2` / `dirjax.data.stsb`. Exit status 1 with the message on any
missing file.

`--prepare_to=DIR` (age benchmarks) then decodes and resizes every image of each split once into
raw-uint8 ArrayRecord shards `DIR/<split>-*` (`dirjax.data.prepared`; resumable, progress per shard):

  python -m scripts.prepare_data --dataset=agedb_dir --data_dir=/data/agedb --prepare_to=/data/agedb_224
"""

import argparse
import importlib
import sys

PREPARERS = {
  "agedb_dir": "dirjax.data.agedb",
  "imdb_wiki_dir": "dirjax.data.imdb_wiki",
  "nyud2_dir": "dirjax.data.nyud2",
  "stsb_dir": "dirjax.data.stsb",
}


def prepare_age_splits(dataset: str, data_dir: str, out_dir: str, img_size: int) -> None:
  import os

  import pandas as pd

  from dirjax.data import prepared
  if dataset not in ("agedb_dir", "imdb_wiki_dir"):
    raise ValueError(f"--prepare_to supports agedb_dir and imdb_wiki_dir, not {dataset}")
  table = pd.read_csv(os.path.join(data_dir, "agedb.csv" if dataset == "agedb_dir" else "imdb_wiki.csv"))
  errors = []
  for split in ("train", "val", "test"):  # every split, so one run names every corrupt image
    paths = table.loc[table["split"] == split, "path"].tolist()
    try:
      prepared.prepare_split(data_dir, paths, img_size, os.path.join(out_dir, split))
      print(f"{split}: {len(paths)} images prepared in {out_dir}")
    except ValueError as e:
      errors.append(f"{split}: {e}")
  if errors:
    raise ValueError("\n".join(errors))


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--dataset", required=True, choices=sorted(PREPARERS))
  parser.add_argument("--data_dir", required=True, help="folder holding the benchmark's files")
  parser.add_argument("--prepare_to", default=None, help="age benchmarks: write prepared splits here")
  parser.add_argument("--img_size", type=int, default=224, help="side of the prepared images")
  args = parser.parse_args(argv)
  module = importlib.import_module(PREPARERS[args.dataset])
  try:
    module.prepare(args.data_dir)
    if args.prepare_to:
      prepare_age_splits(args.dataset, args.data_dir, args.prepare_to, args.img_size)
  except (FileNotFoundError, ValueError) as e:
    print(f"{args.dataset}: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
