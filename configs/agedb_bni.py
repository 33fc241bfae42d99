"""AgeDB-DIR, Balanced MSE, BNI (bucket prior of the training ages): RRT stage 2, lr 1e-4, 10 epochs, σ₀ = 10 learnable (lr 0.01), selection on val bMAE.

Reference: No reference run: Balanced MSE reports IMDB-WIKI-DIR and NYUD2-DIR only; this is the IMDB-WIKI recipe by analogy.
ResNet-50 from scratch, 224² inputs, batch 256, Adam; recipe and deviations in `configs/age_common.py`.

The reference builds the BNI buckets over ages 0..199 (`max_target=200`); `prior='buckets'` uses
`data.max_target` (121) bins, so ages > 120 are left out of the prior. For the reference's buckets:
  python -m scripts.preprocess_gmm --dataset=agedb_dir --data_dir=/data/agedb --prior=buckets --max_target=200 --out=bni.npz
and add --config.loss.prior=bni.npz.

Stage 2: needs a finished `configs/agedb_vanilla.py` run in --config.init_from.

Run:
  python -m dirjax.main --config=configs/agedb_bni.py --workdir=/tmp/agedb_bni \
    --config.data.data_dir=/data/agedb --config.init_from=/tmp/agedb_vanilla

`--config=configs/agedb_bni.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  return age_common.get_config("agedb", "bni", arg)
