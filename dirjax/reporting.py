"""Reporting: per-shot tables, and the variant sweep (one command trains several methods and
compares them in `comparison.md`, `comparison.json` and `predictions.png`)."""

import copy
import os
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
from absl import logging

from dirjax import stats, writers

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
  if "relevance" in metrics:
    r = metrics["relevance"]
    rare = f"{r['rare_mse']:.4f}" if r["rare_mse"] is not None else "-"
    lines.append(f"relevance: SERA {r['sera']:.4f}  MSE(φ ≥ 0.5) {rare} ({r['rare_count']} samples)")
  for name, m in metrics.get("ranges", {}).items():
    value = "-" if m["mae"] is None else f"{m['mae']:.4f}"
    lines.append(f"range {name}: MAE {value}  ({m['count']} samples)")
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
  (docs/deviations.md row 36): the one-seed case of `dirjax.sweep`."""
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
  """Markdown table: one row per variant, each metric for the best and for the last model (one
  seed: `seed_table` of `summarize`)."""
  return seed_table(summarize({name: {0: r} for name, r in results.items()}, metric_paths, split))


def summarize(results: dict, metric_paths, split: str, baseline: str | None = None,
              confidence: float = 0.95) -> dict:
  """Seed statistics of a sweep: `results[variant][seed]` is a run's `metrics.json`. Per variant and
  metric (best-on-val and last model): `stats.mean_interval` over the seeds; with `baseline`, each
  other variant's `stats.paired_difference` to it over their common seeds. Metrics absent (None)
  in any seed of a variant are left out."""
  if baseline is not None and baseline not in results:
    raise ValueError(f"baseline variant {baseline!r} is not among the swept variants {list(results)}")
  def values(runs, kind, m):
    picked = [lookup((r if kind == "best" else r["last"])[split], m) for r in runs]
    return None if any(v is None for v in picked) else picked
  summary = {"split": split, "metrics": list(metric_paths), "confidence": confidence, "baseline": baseline,
             "variants": {}, "paired": {}}
  for name, by_seed in results.items():
    runs = list(by_seed.values())
    entry = {"seeds": list(by_seed), "best_epoch": [r["epoch"] for r in runs]}
    for kind in ("best", "last"):
      entry[kind] = {m: stats.mean_interval(v, confidence) for m in metric_paths
                     if (v := values(runs, kind, m)) is not None}
    if all("noise_sigma" in r for r in runs):
      entry["noise_sigma"] = stats.mean_interval([r["noise_sigma"] for r in runs], confidence)
    summary["variants"][name] = entry
  if baseline is None:
    return summary
  for name, by_seed in results.items():
    common = [s for s in by_seed if s in results[baseline]]
    if name == baseline or not common:
      continue
    mine, base = [by_seed[s] for s in common], [results[baseline][s] for s in common]
    summary["paired"][name] = {"seeds": common, **{kind: {
      m: stats.paired_difference(a, b, confidence) for m in metric_paths
      if (a := values(mine, kind, m)) is not None and (b := values(base, kind, m)) is not None}
      for kind in ("best", "last")}}
  return summary


def _cell(s: dict | None, signed: bool = False) -> str:
  if s is None:
    return "-"
  sign = "+" if signed else ""
  if s["half_width"] is None:
    return f"{s['mean']:{sign}.6f}"
  text = f"{s['mean']:{sign}.4f} ± {s['half_width']:.4f}"
  return text + (" *" if s.get("excludes_zero") else "")


def seed_table(summary: dict) -> str:
  """Markdown of `summarize`: mean ± half-width of the t-interval (the value itself for one seed)
  per variant and metric, best-on-val and last model; then the paired differences to the baseline
  (variant - baseline, * when the interval excludes 0)."""
  split, metrics = summary["split"], summary["metrics"]
  header = ["variant", "seeds", "best epoch"] + [f"{split} {m} ({kind})" for m in metrics for kind in ("best", "last")]
  header.append("σ (best)")
  rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for name, e in summary["variants"].items():
    epochs = e["best_epoch"]
    cells = [name, str(len(e["seeds"])), str(epochs[0]) if len(epochs) == 1 else f"{np.mean(epochs):.1f}"]
    cells += [_cell(e[kind].get(m)) for m in metrics for kind in ("best", "last")]
    cells.append(_cell(e.get("noise_sigma")))
    rows.append("| " + " | ".join(cells) + " |")
  if summary["paired"]:
    level = f"{100 * summary['confidence']:g} %"
    rows += ["", f"Paired difference to {summary['baseline']} (same seeds; mean ± {level} t-interval; "
             "* = the interval excludes 0; negative = lower error than the baseline):", ""]
    header = ["variant", "seeds"] + [f"Δ {split} {m} ({kind})" for m in metrics for kind in ("best", "last")]
    rows += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, p in summary["paired"].items():
      cells = [name, str(len(p["seeds"]))] + [_cell(p[kind].get(m), signed=True) for m in metrics
                                               for kind in ("best", "last")]
      rows.append("| " + " | ".join(cells) + " |")
  return "\n".join(rows)


def _pyplot():
  """matplotlib's pyplot on the file-only Agg backend (imported lazily: plotting is host-side and optional)."""
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot
  return pyplot


def _save_png(fig, path: str) -> None:
  """`fig` as a PNG at `path` (written atomically), then closed."""
  with writers.atomic_file(path) as f:
    fig.savefig(f, dpi=110, format="png")
  _pyplot().close(fig)


def plot_seed_summary(summary: dict, path: str) -> None:
  """Per-method mean with its t-interval per metric (shot group), best-on-val and last model side by
  side; methods are offset horizontally so that overlapping intervals stay readable."""
  plt = _pyplot()

  metrics, names = summary["metrics"], list(summary["variants"])
  fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(metrics) * 2), 4.5), sharey=True)
  width = 0.8 / max(len(names), 1)
  for ax, kind in zip(axes, ("best", "last")):
    for i, name in enumerate(names):
      entry = summary["variants"][name][kind]
      xs = [j - 0.4 + width * (i + 0.5) for j, m in enumerate(metrics) if m in entry]
      means = [entry[m]["mean"] for m in metrics if m in entry]
      errs = [entry[m]["half_width"] or 0.0 for m in metrics if m in entry]
      ax.errorbar(xs, means, yerr=errs, fmt="o", capsize=3, ms=4, label=name)
    ax.set_xticks(range(len(metrics)), metrics, rotation=20)
    ax.set_title(f"{summary['split']} error, {'best-on-val' if kind == 'best' else 'last'} model")
    ax.grid(axis="y", alpha=0.3)
  n = max(len(e["seeds"]) for e in summary["variants"].values())
  axes[0].set_ylabel(f"mean over seeds (n={n}) ± {100 * summary['confidence']:g} % t-interval")
  axes[1].legend(fontsize=8, title="method")
  fig.tight_layout()
  _save_png(fig, path)


def plot_predictions(workdir: str, names: list[str], split: str, path: str) -> None:
  """Predictions of each variant's best model against the targets (one panel per target
  dimension; the diagonal is the oracle), next to the training label histogram."""
  plt = _pyplot()

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
  _save_png(fig, path)


def plot_label_errors(path: str, split: str, targets: np.ndarray, preds: dict[str, np.ndarray],
                      train_labels: np.ndarray, num_bins: int = 40) -> bool:
  """The DIR figure: mean absolute error per label bin of each model in `preds` (e.g. "best-on-val
  (epoch 4)" and "last (epoch 9)", distinct markers and line styles) over the training-label
  density (grey bars, right axis). Scalar targets only; returns False (nothing written) otherwise."""
  targets = np.asarray(targets, np.float64).reshape(len(targets), -1)
  train_labels = np.asarray(train_labels, np.float64).reshape(len(train_labels), -1)
  if targets.shape[1] != 1 or train_labels.shape[1] != 1 or len(targets) == 0:
    return False
  plt = _pyplot()

  y, train = targets[:, 0], train_labels[:, 0]
  edges = np.histogram_bin_edges(np.concatenate([y, train]), bins=num_bins)
  centres = (edges[1:] + edges[:-1]) / 2
  index = np.clip(np.searchsorted(edges, y, side="right") - 1, 0, num_bins - 1)
  counts = np.bincount(index, minlength=num_bins)
  fig, ax = plt.subplots(figsize=(8, 4.5))
  density = ax.twinx()
  density.bar(centres, np.histogram(train, edges)[0], width=np.diff(edges), color="0.85", label="training labels")
  density.set_ylabel("training samples per bin")
  ax.set_zorder(density.get_zorder() + 1)
  ax.patch.set_visible(False)
  styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-.")]
  for k, (name, p) in enumerate(preds.items()):
    errors = np.abs(np.asarray(p, np.float64).reshape(y.shape) - y)
    mae = np.bincount(index, errors, minlength=num_bins) / np.maximum(counts, 1)
    marker, line = styles[k % len(styles)]
    ax.plot(centres[counts > 0], mae[counts > 0], marker=marker, linestyle=line, ms=4, label=name)
  ax.set_xlabel("label")
  ax.set_ylabel(f"{split} MAE per label bin")
  ax.set_title(f"{split} error per label bin against the training-label density")
  handles = ax.get_legend_handles_labels()[0] + density.get_legend_handles_labels()[0]
  ax.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="upper center")
  fig.tight_layout()
  _save_png(fig, path)
  return True
