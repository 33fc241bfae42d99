"""IMDB-WIKI-DIR, RRT: stage 2 on a finished vanilla run: head re-initialised and trained alone with SQINV weights, same 90-epoch schedule.

BatchNorm running statistics still move, as in the reference, whose `--retrain_fc` trains in
`model.train()` mode.

Reference: DIR paper Table 1 (not re-read): MAE 7.81 / 7.07 / 14.06 / 25.13.
ResNet-50 from scratch, 224² inputs, batch 256, Adam; recipe and deviations in `configs/age_common.py`.

Stage 2: needs a finished `configs/imdb_vanilla.py` run in --config.init_from.

Run:
  python -m dirjax.main --config=configs/imdb_rrt.py --workdir=/tmp/imdb_rrt \
    --config.data.data_dir=/data/imdb --config.init_from=/tmp/imdb_vanilla

`--config=configs/imdb_rrt.py:smoke` is the one-step version the tests run on a tiny fixture.
"""

from configs import age_common


def get_config(arg: str = ""):
  c = age_common.base_config("imdb")
  c.reweight.method = "sqrt_inv"  # SQINV: weights ∝ 1/sqrt(n_age), mean 1
  # Stage 2 on a finished vanilla run: re-initialise the linear head and train only it, with the
  # stage-1 schedule (90 epochs, lr 1e-3, milestones 60/80).
  c.init_from = age_common.INIT_FROM_REQUIRED
  c.train_only = "head"
  return age_common.for_arg(c, arg)
