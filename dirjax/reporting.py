"""Reporting: per-shot tables, and the variant sweep (one command trains several methods and
compares them in `comparison.md`, `comparison.json` and `predictions.png`)."""

import copy
import os
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
from absl import logging

from dirjax import writers

SHOTS = ("all", "many", "medium", "few")


def lookup(tree: dict, path: str):
  """`tree["a"]["b"]` for the path "a/b" (metric paths such as "all/mae")."""
  for key in path.split("/"):
    tree = tree[key]
  return tree


def format_shot_table(metrics: dict) -> str:
  """Rows all/many/medium/few (absent groups are skipped) with every metric of the "all" group as a
  column (MAE, MSE, GM for ages; RMSE, ..., δ₃ for depth; + Pearson/Spearman for STS-B) and count."""
  columns = [k for k in metrics.get("all", {}) if k != "count"]
  lines = ["shot    " + "".join(f"{c.upper():>10}" for c in columns) + f"{'count':>9}"]
  fmt = lambda v: f"{v:>10.4f}" if v is not None else f"{'-':>10}"
  for shot in SHOTS:
    if shot in metrics:
      m = metrics[shot]
      lines.append(f"{shot:<8}" + "".join(fmt(m.get(c)) for c in columns) + f"{m.get('count', 0):>9}")
  if "balanced" in metrics:
    b = metrics["balanced"]
    lines.append(f"balanced: bMAE {b['bmae']:.4f}  bMSE {b['bmse']:.4f}")
  return "\n".join(lines)


def variant_configs(config: ml_collections.ConfigDict) -> list[tuple[str, ml_collections.ConfigDict]]:
  """(name, config) per entry of `config.variants` (name → nested overrides; unknown keys fail, except new
  labels of the open `regularizers` section)."""
  out = []
  for name, overrides in config.variants.items():
    cfg = copy.deepcopy(config)
    cfg.variants = ml_collections.ConfigDict()
    overrides = dict(overrides)
    regularizers = overrides.pop("regularizers", {})
    try:
      cfg.update(overrides)
    except (KeyError, AttributeError, TypeError) as e:
      raise ValueError(f"variant {name!r} overrides a config field that does not exist or has another "
                       f"type: {e}") from e
    if regularizers:  # an open section (label -> term, dirjax.objective): a variant may add labels
      if "regularizers" not in cfg:
        with cfg.unlocked():
          cfg.regularizers = ml_collections.ConfigDict()
      with cfg.regularizers.unlocked():
        cfg.regularizers.update(regularizers)
    out.append((name, cfg))
  return out


def train_variants(config: ml_collections.ConfigDict, workdir: str, train: Callable[..., dict],
                   **train_kwargs) -> dict:
  """Trains every variant with `train(config, workdir, **train_kwargs)` into `workdir/<name>/`,
  then (on process 0) writes `comparison.json`, `comparison.md` and `predictions.png`
  (test predictions of the best models vs targets) and prints the table of
  `config.report.metrics` on the test split for the best-on-val and the last model
  (docs/deviations.md row 36)."""
  results = {}
  variants = variant_configs(config)
  for index, (name, cfg) in enumerate(variants):
    logging.info("training variant %s (%d/%d)", name, index + 1, len(variants))
    with writers.variant_progress(index, len(variants)):
      results[name] = train(cfg, os.path.join(workdir, name), **train_kwargs)
    if "stopped_at_step" in results[name]:
      return results
  if jax.process_index() != 0:
    return results
  table = comparison_table(results, config.report.metrics, config.report.split)
  print(table)
  writers.write_text(os.path.join(workdir, "comparison.md"), table + "\n")
  writers.write_json(os.path.join(workdir, "comparison.json"), results)
  plot_predictions(workdir, list(results), config.report.split, os.path.join(workdir, "predictions.png"))
  return results


def comparison_table(results: dict, metric_paths, split: str) -> str:
  """Markdown table: one row per variant, each metric for the best and for the last model."""
  header = ["variant", "best epoch"] + [f"{split} {m} ({kind})" for m in metric_paths for kind in ("best", "last")]
  header.append("σ (best)")
  rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for name, r in results.items():
    cells = [name, str(r["epoch"])]
    for m in metric_paths:
      for kind in (r, r["last"]):
        value = lookup(kind[split], m)
        cells.append("-" if value is None else f"{value:.6f}")
    cells.append(f"{r['noise_sigma']:.4f}" if "noise_sigma" in r else "-")
    rows.append("| " + " | ".join(cells) + " |")
  return "\n".join(rows)


def plot_predictions(workdir: str, names: list[str], split: str, path: str) -> None:
  """Predictions of each variant's best model against the targets (one panel per target
  dimension; the diagonal is the oracle), next to the training label histogram."""
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt

  loaded = {n: np.load(os.path.join(workdir, n, f"predictions_{split}.npz")) for n in names}
  first = next(iter(loaded.values()))
  targets = first["targets"].reshape(len(first["targets"]), -1)
  dims = targets.shape[1]
  fig, axes = plt.subplots(1, dims + 1, figsize=(5 * (dims + 1), 4.5), squeeze=False)
  for d in range(dims):
    ax = axes[0, d]
    order = np.argsort(targets[:, d])
    lo, hi = targets[:, d].min(), targets[:, d].max()
    ax.plot([lo, hi], [lo, hi], "k--", lw=1.5, label="oracle")
    for n, arrays in loaded.items():
      preds = arrays["preds"].reshape(len(targets), -1)[:, d]
      if len(targets) > 300:
        ax.scatter(targets[order, d], preds[order], s=3, alpha=0.5, label=n)
      else:
        ax.plot(targets[order, d], preds[order], lw=1.2, label=n)
    ax.set_xlabel(f"{split} target" + (f" [{d}]" if dims > 1 else ""))
    ax.set_ylabel("prediction")
    ax.legend(fontsize=7)
  train_labels = np.load(os.path.join(workdir, names[0], "train_labels.npy"))
  axes[0, dims].hist(train_labels.reshape(len(train_labels), -1), bins=40)
  axes[0, dims].set_title("training labels")
  fig.tight_layout()
  with writers.atomic_file(path) as f:
    fig.savefig(f, dpi=110, format="png")
  plt.close(fig)
