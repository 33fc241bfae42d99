"""IMDB-WIKI-DIR, Balanced MSE, GAI (GMM prior, K = 8, fitted on the training ages): RRT stage 2, lr 1e-4, 10 epochs, σ₀ = 10 learnable (lr 0.01), selection on val bMAE.

Reference: BalancedMSE imdb-wiki-dir/README.md: bMAE all 12.690, many 7.589, medium 12.880, few 28.307.
ResNet-50 from scratch, 224² inputs, batch 256, Adam; recipe and deviations in `configs/age_common.py`.

The GMM is fitted when the run starts (sklearn, random_state 0, label order of the CSV); to use a
fixed prior file as the reference's `preprocess_gmm.py`, run
  python -m scripts.preprocess_gmm --dataset=imdb_wiki_dir --data_dir=/data/imdb --prior=gmm --K=8 --out=gmm.npz
and add --config.loss.prior=gmm.npz.

Stage 2: needs a finished `configs/imdb_vanilla.py` run in --config.init_from.

Run:
  python -m dirjax.main --config=configs/imdb_gai.py --workdir=/tmp/imdb_gai \
    --config.data.data_dir=/data/imdb --config.init_from=/tmp/imdb_vanilla

`--config=configs/imdb_gai.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("imdb")
  # Stage 2 on a finished vanilla run: re-initialise the linear head and train only it.
  c.init_from = age_common.INIT_FROM_REQUIRED
  c.train_only = "head"
  c.loss.name = "gai"
  c.loss.prior = "gmm"  # GMM of loss.gmm_components (8) components, fitted on the training ages
  c.loss.init_noise_sigma = 10.0  # noise variance 100 years²
  c.loss.fix_noise_sigma = False  # σ is learned with its own lr 0.01
  c.loss.sigma_lr = 1e-2
  c.optimizer.lr = 1e-4
  c.num_epochs = 10  # milestones 60/80 are never reached: constant lr
  c.eval.balanced_metric = True  # select on val bMAE
  c.report.metrics = ("balanced/bmae", "all/mae", "many/mae", "medium/mae", "few/mae")
  return age_common.for_arg(c, arg)
