"""Fits the Balanced-MSE label priors from the training labels only (never the images) and saves them (.npz).

  python -m scripts.preprocess_gmm --dataset=imdb_wiki_dir --data_dir=/data/imdb --K=8 --out=gmm.npz
  python -m scripts.preprocess_gmm --dataset=imdb_wiki_dir --data_dir=/data/imdb --prior=buckets --out=bni.npz
  python -m scripts.preprocess_gmm --dataset=nyud2_dir --K=16 --out=gmm_nyud2.npz

GAI (`--prior=gmm`): sklearn GaussianMixture(K, random_state=0) on the train ages of the split
CSV (BalancedMSE `imdb-wiki-dir/preprocess_gmm.py` decodes every image just to read the labels),
or for NYUD2-DIR on labels synthesised from `TRAIN_BUCKET_NUM` (`nyud2-dir/preprocess_gmm.py`: buckets
0–6 take bucket 7's count, centre 0.05 + 0.1·i repeated count // 1e6 times → 3,644 labels). BNI
(`--prior=buckets`): the integer-age histogram over 0..max_target−1 (`imdb-wiki-dir/datasets.py`,
max_target 200), or for NYUD2 the 100 buckets of `TRAIN_BUCKET_NUM` (`nyud2-dir/loaddata.py`). Use the file with `--config.loss.prior=<out>`.
"""

import argparse
import os
import sys

import numpy as np

from dirjax import priors, weighting

AGE_DATASETS = {"agedb_dir": "agedb", "imdb_wiki_dir": "imdb_wiki"}


def age_train_labels(dataset: str, data_dir: str) -> np.ndarray:
  """Train ages of an age benchmark's split CSV (no image is opened)."""
  import importlib
  from dirjax.data import age
  module = importlib.import_module(f"dirjax.data.{AGE_DATASETS[dataset]}")
  table = age.read_split_table(os.path.join(data_dir, module.BENCHMARK.csv), age.LABEL_RANGE)
  return table.loc[table["split"] == "train", "age"].to_numpy(np.float32)


def build_prior(dataset: str, data_dir: str | None, kind: str, k: int, max_target: int, seed: int = 0):
  if dataset == "nyud2_dir":
    from dirjax.data import nyud2
    if kind == "gmm":
      return priors.fit_gmm(nyud2.synthetic_train_labels(), k, seed=seed)
    return priors.bucket_prior_from_counts(nyud2.BINNING.centers(), np.asarray(nyud2.TRAIN_BUCKET_NUM),
                                           bucket_start=nyud2.BUCKET_START)
  if data_dir is None:
    raise ValueError(f"--data_dir is required for {dataset}")
  labels = age_train_labels(dataset, data_dir)
  if kind == "gmm":
    return priors.fit_gmm(labels, k, seed=seed)
  return priors.bucket_prior(labels, weighting.Binning(max_target))


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--dataset", required=True, choices=sorted([*AGE_DATASETS, "nyud2_dir"]))
  parser.add_argument("--data_dir", default=None, help="folder with the split CSV (age benchmarks)")
  parser.add_argument("--prior", default="gmm", choices=["gmm", "buckets"])
  parser.add_argument("--K", type=int, default=8, help="GMM components (8 IMDB-WIKI, 16 NYUD2)")
  parser.add_argument("--max_target", type=int, default=200, help="BNI: ages 0..max_target-1")
  parser.add_argument("--seed", type=int, default=0, help="GaussianMixture random_state")
  parser.add_argument("--out", required=True, help="output .npz")
  args = parser.parse_args(argv)
  try:
    prior = build_prior(args.dataset, args.data_dir, args.prior, args.K, args.max_target, args.seed)
  except (FileNotFoundError, ValueError) as e:
    print(e, file=sys.stderr)
    return 1
  priors.save_prior(args.out, prior)
  print(f"wrote {args.prior} prior of {args.dataset} to {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
