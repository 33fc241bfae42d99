"""IMDB-WIKI-DIR, Balanced MSE, BMC (batch Monte-Carlo): RRT stage 2, lr 1e-4, 10 epochs, σ₀ = 10 learnable (lr 0.01), selection on val bMAE.

Reference: BalancedMSE imdb-wiki-dir/README.md: bMAE 12.654 / 7.649 / 12.689 / 28.097.
ResNet-50 from scratch, 224² inputs, batch 256, Adam; recipe and deviations in `configs/age_common.py`.

Stage 2: needs a finished `configs/imdb_vanilla.py` run in --config.init_from.

Run:
  python -m dirjax.main --config=configs/imdb_bmc.py --workdir=/tmp/imdb_bmc \
    --config.data.data_dir=/data/imdb --config.init_from=/tmp/imdb_vanilla

`--config=configs/imdb_bmc.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  return age_common.get_config("imdb", "bmc", arg)
