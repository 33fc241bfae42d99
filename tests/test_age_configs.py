"""IMDB-WIKI-DIR / AgeDB-DIR experiment configs: reference hyper-parameters + one-step smoke runs."""

import importlib
import os
import shutil

import pytest

from tests import fixtures_age

DATASETS = ("imdb", "agedb")
METHODS = ("vanilla", "sqinv", "lds", "fds", "lds_fds", "focal", "rrt", "gai", "bmc", "bni", "smoter", "smogn")
STAGE2 = ("rrt", "gai", "bmc", "bni")
CONFIGS = [f"{d}_{m}" for d in DATASETS for m in METHODS]
# Feature regularisers (RankSim, ordinal entropy) and the RankSim combinations of the RankSim READMEs.
REGULARISED = ("ranksim", "sqinv_ranksim", "lds_fds_ranksim", "ordinal_entropy")
REGULARISED_CONFIGS = [f"{d}_{m}" for d in DATASETS for m in REGULARISED]


def load(name: str, arg: str = ""):
  return importlib.import_module(f"configs.{name}").get_config(arg)


@pytest.mark.parametrize("name", CONFIGS)
def test_reference_hyper_parameters(name):
  dataset, method = name.split("_", 1)
  c = load(name)
  # imbalanced-regression {imdb-wiki,agedb}-dir/train.py + README commands: ResNet-50, Adam 1e-3 (no weight
  # decay), 90 epochs, ×0.1 at 60 and 80, batch 256, 224² images; bucket_start 0 (IMDB-WIKI) / 3 (AgeDB);
  # max_target 121; shots 100 / 20.
  assert c.model.name == "resnet50" and c.data.img_size == 224 and c.batch_size == 256
  assert c.optimizer.name == "adam" and c.optimizer.weight_decay == 0.0
  assert tuple(c.optimizer.milestones) == (60, 80) and c.optimizer.decay_factor == 0.1
  assert c.data.name == {"imdb": "imdb_wiki_dir", "agedb": "agedb_dir"}[dataset]
  assert c.data.bucket_start == {"imdb": 0, "agedb": 3}[dataset] and c.data.bucket_num == 100
  assert c.data.max_target == 121 and (c.data.many_shot_thr, c.data.low_shot_thr) == (100, 20)
  # LDS / FDS: paper setting gaussian ks 5, σ 2 (README commands).
  assert (c.reweight.kernel, c.reweight.ks, c.reweight.sigma) == ("gaussian", 5, 2.0)
  assert (c.fds.kernel, c.fds.ks, c.fds.sigma, c.fds.momentum) == ("gaussian", 5, 2.0, 0.9)
  assert c.reweight.lds == (method in ("lds", "lds_fds"))
  assert c.fds.enabled == (method in ("fds", "lds_fds"))
  assert c.reweight.method == ("sqrt_inv" if method in ("sqinv", "lds", "fds", "lds_fds", "rrt") else "none")
  assert c.loss.name == {"focal": "focal_l1", "gai": "gai", "bmc": "bmc", "bni": "bni"}.get(method, "l1")
  assert c.loss.prior == {"gai": "gmm", "bni": "buckets"}.get(method, "")  # GAI: GMM prior; BNI: histogram
  # SMOTER / SMOGN: defaults of the smogn package (k 5, pert 0.02, relevance threshold 0.5).
  assert c.data.resample.method == (method if method in ("smoter", "smogn") else "")
  assert (c.data.resample.k, c.data.resample.pert, c.data.resample.threshold) == (5, 0.02, 0.5)
  if method == "focal":
    assert dict(c.loss.kwargs) == {"activate": "sigmoid", "beta": 0.2, "gamma": 1.0}
  if method in STAGE2:
    assert c.train_only == "head" and c.init_from  # a vanilla run must be given
  else:
    assert c.train_only == "" and c.init_from == ""
  if method in ("gai", "bmc", "bni"):
    # BalancedMSE imdb-wiki-dir/README.md: --lr 1e-4 --epoch 10 --init_noise_sigma 10, σ learnable, sigma_lr 0.01,
    # --balanced_metric; GAI with the K = 8 GMM.
    assert (c.optimizer.lr, c.num_epochs, c.loss.init_noise_sigma) == (1e-4, 10, 10.0)
    assert not c.loss.fix_noise_sigma and c.loss.sigma_lr == 0.01 and c.eval.balanced_metric
    assert c.loss.gmm_components == 8
  else:
    assert (c.optimizer.lr, c.num_epochs) == (1e-3, 90) and not c.eval.balanced_metric


@pytest.mark.parametrize("name", REGULARISED_CONFIGS)
def test_regulariser_readme_values(name):
  dataset, method = name.split("_", 1)
  c = load(name)
  assert c.model.name == "resnet50" and c.data.img_size == 224 and c.loss.name == "l1"
  assert c.num_epochs == 90 and tuple(c.optimizer.milestones) == (60, 80) and c.optimizer.weight_decay == 0.0
  assert c.train_only == "" and c.init_from == "" and not c.data.get("two_views", False)
  if method == "ordinal_entropy":
    # needylove/OrdinalEntropy README: `loss = loss + oe_loss` on the imbalanced-regression baseline (batch 256, lr 1e-3).
    assert c.regularizers.to_dict() == {"ordinal_entropy": {"name": "ordinal_entropy", "weight": 1.0}}
    assert (c.batch_size, c.optimizer.lr, c.reweight.method) == (256, 1e-3, "none")
    return
  # ranksim-imbalanced-regression {agedb,imdb-wiki}-dir/README.md: γ 100, λ 2; batch 64 / lr 2.5e-4 on AgeDB,
  # batch 256 / lr 1e-3 on IMDB-WIKI; --reweight sqrt_inv in the SQINV and LDS + FDS rows, LDS/FDS gaussian ks 5 σ 2.
  assert c.regularizers.to_dict() == {"ranksim": {"name": "ranksim", "weight": 100.0, "interpolation": 2.0}}
  assert (c.batch_size, c.optimizer.lr) == {"agedb": (64, 2.5e-4), "imdb": (256, 1e-3)}[dataset]
  assert c.reweight.method == ("none" if method == "ranksim" else "sqrt_inv")
  assert c.reweight.lds == c.fds.enabled == (method == "lds_fds_ranksim")
  assert (c.reweight.ks, c.reweight.sigma, c.fds.ks, c.fds.sigma) == (5, 2.0, 5, 2.0)


@pytest.mark.parametrize("name", REGULARISED_CONFIGS)
def test_regulariser_one_step_smoke(name, age_root, tmp_path):
  from dirjax import train
  c = load(name, "smoke")
  c.data.data_dir = age_root
  result = train.train_and_evaluate(c, str(tmp_path))
  assert result["test"]["all"]["count"] == 10 and result["test"]["all"]["mae"] >= 0


@pytest.fixture(scope="module")
def age_root(tmp_path_factory):
  root = fixtures_age.make_agedb(str(tmp_path_factory.mktemp("age") / "data"),
                                 train_counts={3: 2, 20: 4, 35: 6, 60: 3, 99: 1})
  shutil.copy(os.path.join(root, "agedb.csv"), os.path.join(root, "imdb_wiki.csv"))
  return root


@pytest.fixture(scope="module")
def vanilla_runs(age_root, tmp_path_factory):
  """Workdirs of one-step vanilla runs (the stage-1 models of the RRT / Balanced-MSE configs)."""
  from dirjax import train
  runs = {}
  for dataset in DATASETS:
    workdir = str(tmp_path_factory.mktemp(f"{dataset}_vanilla"))
    c = load(f"{dataset}_vanilla", "smoke")
    c.data.data_dir = age_root
    train.train_and_evaluate(c, workdir)
    runs[dataset] = workdir
  return runs


@pytest.mark.parametrize("name", CONFIGS)
def test_smoke_config_builds_with_the_trainer(name, age_root, vanilla_dir_stub):
  """Fast version of the smoke run: the trainer's config check, data, loss, weights and FDS options
  (everything of `Experiment` except the model, whose ResNet compile takes minutes on 2 cores)."""
  from dirjax import data, fds, objective, train, weighting
  dataset, method = name.split("_", 1)
  c = load(name, "smoke")
  c.data.data_dir = age_root
  if method in STAGE2:
    c.init_from = vanilla_dir_stub
  train.check_config(c)
  bundle = data.get_data(c.data, seed=c.seed)
  objective.build(c, bundle)
  table = weighting.weight_table(c.reweight, bundle)
  assert (table is None) == (c.reweight.method == "none")
  if c.fds.enabled:
    assert fds.build(c.fds, 8, bundle.fds_buckets).bucket_start == {"imdb": 0, "agedb": 3}[dataset]
  assert bundle.splits["train"][0]["inputs"].shape == (32, 32, 3)


@pytest.fixture(scope="module")
def vanilla_dir_stub(tmp_path_factory):
  """A directory that passes `check_config`'s init_from test (config.json present)."""
  path = tmp_path_factory.mktemp("vanilla_stub")
  (path / "config.json").write_text("{}")
  return str(path)


# One real training step per config, with the smoke switch's tiny ResNet-18 (width 4, one block per stage).
@pytest.mark.parametrize("name", CONFIGS)
def test_one_step_smoke(name, age_root, vanilla_runs, tmp_path):
  from dirjax import train
  dataset, method = name.split("_", 1)
  c = load(name, "smoke")
  c.data.data_dir = age_root
  if method in STAGE2:
    c.init_from = vanilla_runs[dataset]
  result = train.train_and_evaluate(c, str(tmp_path))
  test = result["test"] if "test" in result else result
  assert test["all"]["count"] == 10  # 5 ages × 2 test faces, each predicted once
  assert test["all"]["mae"] >= 0
