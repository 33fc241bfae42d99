"""Builds IMDB-WIKI-DIR's `imdb_wiki.csv` (`age,path,split`) from the crops' .mat metadata.

  python -m scripts.create_imdb_wiki --data_dir=/data/imdb_wiki

Reads `<data_dir>/imdb_crop/imdb.mat` and `<data_dir>/wiki_crop/wiki.mat` (ETH Zurich IMDB-WIKI
face crops), keeps faces with face_score >= --min_score, no second face and 0 <= age <= 200, then
makes the balanced val/test split of the reference `make_balanced_testset` (per age 0..120:
min(n // 3, --max_size) val and as many test faces, Python `random` seeded with --seed).
(`imdb-wiki-dir/data/preprocess_imdb_wiki.py` of YyzHarry/imbalanced-regression; the same split rule with
--max_size=30 made AgeDB-DIR.)
"""

import argparse
import os
import sys

from dirjax.data import imdb_wiki


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data_dir", required=True)
  parser.add_argument("--out", default=None, help="output CSV (default <data_dir>/imdb_wiki.csv)")
  parser.add_argument("--min_score", type=float, default=1.0)
  parser.add_argument("--max_size", type=int, default=imdb_wiki.MAX_SPLIT_SIZE)
  parser.add_argument("--seed", type=int, default=666)
  args = parser.parse_args(argv)
  out = args.out or os.path.join(args.data_dir, imdb_wiki.BENCHMARK.csv)
  try:
    table = imdb_wiki.create_table(args.data_dir, out, args.min_score, args.max_size, args.seed)
  except (FileNotFoundError, ValueError) as e:
    print(e, file=sys.stderr)
    return 1
  counts = table["split"].value_counts()
  print(f"wrote {out}: train {counts.get('train', 0)}, val {counts.get('val', 0)}, test {counts.get('test', 0)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
