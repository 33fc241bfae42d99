"""Seed sweeps: `python -m dirjax.sweep --config=configs/<exp>.py --workdir=DIR --seeds=5 --baseline=vanilla`.

Trains the config (or each of its variants, `--variants=a,b` for a subset) once per seed, one run
after another, into `DIR/<variant>/seed<k>/`, then writes `seeds.md`, `seeds.json` and `seeds.png`
in DIR and prints the table: mean ± 95 % Student-t interval over the seeds for every metric of
`config.report.metrics` (best-on-val and last model), and each variant's paired difference to the
baseline variant with its interval and whether it excludes 0 (`dirjax.stats`). Re-running the same
command after a kill continues the sweep: finished runs (with `metrics.json`) are read back, a
partial run resumes from its checkpoint. Flags and `--config.<field>` overrides are those of
`dirjax.main`. A notebook calls `run_sweep` directly.
"""

import json
import os
import sys
from collections.abc import Callable, Sequence

import ml_collections
from absl import app, flags, logging

from dirjax import interrupts, reporting, writers
from dirjax import main as cli

flags.DEFINE_string("seeds", "5", "N (seeds 0..N-1) or a comma-separated list of seeds, e.g. 0,1,2.")
flags.DEFINE_string("baseline", None, "Variant the others are compared with seed by seed (e.g. vanilla).")
flags.DEFINE_list("variants", None, "Only these variants of the config (default: all of them).")
FLAGS = flags.FLAGS


def parse_seeds(text: str) -> list[int]:
  """"5" → [0, 1, 2, 3, 4]; "0,3,7" → [0, 3, 7]."""
  try:
    seeds = [int(s) for s in str(text).split(",") if s.strip()]
  except ValueError:
    raise ValueError(f"--seeds={text!r}: give a number of seeds (5) or a list (0,1,2)") from None
  if len(seeds) == 1 and "," not in str(text):
    seeds = list(range(seeds[0]))
  if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
    raise ValueError(f"--seeds={text!r}: need at least one seed, no repeats, none negative")
  return seeds


def sweep_configs(config: ml_collections.ConfigDict, variants: Sequence[str] | None = None
                  ) -> list[tuple[str, ml_collections.ConfigDict]]:
  """(name, config) per variant (`reporting.variant_configs`), or [("run", config)] without variants."""
  named = reporting.variant_configs(config) if config.variants else [("run", config)]
  if variants:
    unknown = [v for v in variants if v not in dict(named)]
    if unknown:
      raise ValueError(f"variants {unknown} are not in the config; it has {[n for n, _ in named]}")
    named = [(n, c) for n, c in named if n in variants]
  return named


def run_sweep(config: ml_collections.ConfigDict, workdir: str, seeds: Sequence[int], *,
              variants: Sequence[str] | None = None, baseline: str | None = None,
              train: Callable[..., dict] | None = None, **train_kwargs) -> dict:
  """Trains every (variant, seed) run not finished yet into `workdir/<variant>/seed<k>/` with
  `config.seed = k` and returns `reporting.summarize` of all of them (also written as `seeds.json`,
  `seeds.md` and `seeds.png`). A run that stops early (`stop_after_steps`, tests) ends the sweep
  and returns {"stopped_at_step": ...}."""
  if train is None:
    from dirjax import train as train_lib
    train = train_lib.train_and_evaluate
  named = sweep_configs(config, variants)
  if baseline is not None and baseline not in dict(named):
    raise ValueError(f"--baseline={baseline!r} is not among the swept variants {[n for n, _ in named]}")
  results, total, index = {name: {} for name, _ in named}, len(named) * len(seeds), 0
  for seed in seeds:  # seed-major: a sweep stopped early has whole seeds of every variant
    for name, cfg in named:
      run_dir = os.path.join(workdir, name, f"seed{seed}")
      finished = os.path.join(run_dir, "metrics.json")
      if os.path.isfile(finished):
        with open(finished) as f:
          results[name][seed] = json.load(f)
        logging.info("sweep: %s seed %d already finished", name, seed)
      else:
        run_cfg = cfg.copy_and_resolve_references()
        run_cfg.seed = seed
        logging.info("sweep: training %s seed %d (%d/%d)", name, seed, index + 1, total)
        with writers.variant_progress(index, total):
          result = train(run_cfg, run_dir, **train_kwargs)
        if "stopped_at_step" in result:
          return result
        results[name][seed] = result
      index += 1
  summary = reporting.summarize(results, config.report.metrics, config.report.split, baseline)
  table = reporting.seed_table(summary)
  print(table)
  writers.write_text(os.path.join(workdir, "seeds.md"), table + "\n")
  writers.write_json(os.path.join(workdir, "seeds.json"), summary)
  reporting.plot_seed_summary(summary, os.path.join(workdir, "seeds.png"))
  return summary


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {argv[1:]}; flags look like --seeds=5", 2)
  if FLAGS.config is None or not FLAGS.workdir:
    cli.fail("--config and --workdir are required, e.g. --config=configs/synthetic_images.py --workdir=/tmp/sweep", 2)
  cli._quiet_start()
  try:
    seeds = parse_seeds(FLAGS.seeds)
    with interrupts.catch_signals():
      run_sweep(FLAGS.config, FLAGS.workdir, seeds, variants=FLAGS.variants, baseline=FLAGS.baseline)
  except interrupts.Interrupted as e:
    print(f"dirjax: {e} (re-run the same command to continue the sweep)", file=sys.stderr)
    sys.exit(e.exit_code)
  except cli.USER_ERRORS as e:
    if FLAGS.verbose:
      raise
    cli.fail(f"{type(e).__name__}: {e}", 1)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
