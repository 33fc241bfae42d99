"""AgeDB-DIR, Balanced MSE, GAI (GMM prior, K = 8, fitted on the training ages): RRT stage 2, lr 1e-4, 10 epochs, σ₀ = 10 learnable (lr 0.01), selection on val bMAE.

Reference: No reference run: Balanced MSE reports IMDB-WIKI-DIR and NYUD2-DIR only; this is the IMDB-WIKI recipe by analogy.
ResNet-50 from scratch, 224² inputs, batch 256, Adam; recipe and deviations in `configs/age_common.py`.

The GMM is fitted when the run starts (sklearn, random_state 0, label order of the CSV); to use a
fixed prior file as the reference's `preprocess_gmm.py`, run
  python -m scripts.preprocess_gmm --dataset=agedb_dir --data_dir=/data/agedb --prior=gmm --K=8 --out=gmm.npz
and add --config.loss.prior=gmm.npz.

Stage 2: needs a finished `configs/agedb_vanilla.py` run in --config.init_from.

Run:
  python -m dirjax.main --config=configs/agedb_gai.py --workdir=/tmp/agedb_gai \
    --config.data.data_dir=/data/agedb --config.init_from=/tmp/agedb_vanilla

`--config=configs/agedb_gai.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("agedb")
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
