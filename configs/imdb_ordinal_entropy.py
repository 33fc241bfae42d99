"""IMDB-WIKI-DIR, ordinal entropy: L1 loss + weight · (tightness − diversity) on the encoder's features.

needylove/OrdinalEntropy has an age-estimation setting for AgeDB-DIR only (`README.md`: the term of
`AgeEstimation/OrdinalEntropy.py` with weight 1 on the YyzHarry/imbalanced-regression baseline); this
is the same term, weight 1, on the `imdb-wiki-dir` baseline recipe: batch 256, Adam lr 1e-3, 90 epochs,
×0.1 at 60 and 80, no re-weighting. No reference MAE. ResNet-50 from scratch, 224² inputs; the rest of
the recipe in `configs/age_common.py`.

Run:
  python -m dirjax.main --config=configs/imdb_ordinal_entropy.py --workdir=/tmp/imdb_ordinal_entropy \
    --config.data.data_dir=/data/imdb_wiki

`--config=configs/imdb_ordinal_entropy.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

import ml_collections

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("imdb")
  c.batch_size = 256
  c.optimizer.lr = 1e-3
  c.regularizers = ml_collections.ConfigDict({"ordinal_entropy": {"name": "ordinal_entropy", "weight": 1.0}})
  return age_common.for_arg(c, arg)
