"""Checks (and where possible builds) the files a DIR benchmark reads, naming whatever is missing.

  python -m scripts.prepare_data --dataset=agedb_dir --data_dir=/data/agedb

Each benchmark module's `prepare(data_dir)` does the work: AgeDB-DIR / IMDB-WIKI-DIR check the
split CSV and every image (IMDB-WIKI rebuilds imdb_wiki.csv from imdb.mat / wiki.mat when it is
absent; AgeDB rebuilds agedb.csv from the file names, with a warning); NYUD2-DIR and STS-B-DIR
are handled by `dirjax.data.nyud2` / `dirjax.data.stsb`. Exit status 1 with the message on any
missing file.
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


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--dataset", required=True, choices=sorted(PREPARERS))
  parser.add_argument("--data_dir", required=True, help="folder holding the benchmark's files")
  args = parser.parse_args(argv)
  module = importlib.import_module(PREPARERS[args.dataset])
  try:
    module.prepare(args.data_dir)
  except (FileNotFoundError, ValueError) as e:
    print(f"{args.dataset}: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
