"""``rerank-eval run CONFIG``: an experiment, or a sweep (datasets x rerankers)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    run = sub.add_parser("run", parents=[common],
                         help="run an experiment (or a sweep: datasets x rerankers) "
                              "from a YAML config")
    run.add_argument("config", help="path to the experiment or sweep YAML")
    run.add_argument("--out", help="write results here instead of reports/<name>/ and runs/<name>/")
    run.add_argument("--no-cache", action="store_true",
                     help="score every pair with the model; neither read nor write the cache")
    run.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from rerank_eval.config import SweepConfig, load_config
    from rerank_eval.runner import run_experiment, run_sweep
    from rerank_eval.runner.results import summary_table

    config = load_config(args.config)
    out = Path(args.out) if args.out else None
    if isinstance(config, SweepConfig):
        from rerank_eval.runner.sweep import sweep_table

        for exp in config.experiments:
            exp.cache.enabled = exp.cache.enabled and not args.no_cache
        sweep = run_sweep(config, out_dir=out)
        print(sweep_table(sweep))
        print(f"\nsweep:  {sweep.reports_dir / 'sweep.json'}\n"
              f"report: {sweep.reports_dir / 'report.md'}")
        return 0
    if args.no_cache:
        config.cache.enabled = False
    result = run_experiment(config, out_dir=out)
    print(summary_table(result))
    print(f"\nresults: {result.reports_dir / 'results.json'}\nruns:    {result.runs_dir}")
    return 0
