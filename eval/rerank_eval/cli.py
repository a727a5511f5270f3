"""Command line: a thin shell over the Python API. Bad input prints one line, exit code 2."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rerank_eval.errors import InputError


def _cmd_run(args: argparse.Namespace) -> int:
    from rerank_eval.config import load_config
    from rerank_eval.pipeline import run_experiment
    from rerank_eval.reports.results import summary_table

    config = load_config(args.config)
    log = (lambda _msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    result = run_experiment(config, out_dir=Path(args.out) if args.out else None, log=log)
    print(summary_table(result))
    print(f"\nresults: {result.reports_dir / 'results.json'}\nruns:    {result.runs_dir}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from rerank_eval.reports.render import write_report
    from rerank_eval.reports.tables import hw_id, load_results

    results = load_results(args.results)
    path = write_report(results, Path(args.out))
    setups = sorted(set(hw_id(r) for r in results))
    print(f"report: {path}\n        {path.with_suffix('.md')}\n"
          f"{len(results)} results file(s), hardware setups: {', '.join(setups)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank-eval",
                                     description="Evaluate and benchmark rerankers.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an experiment from a YAML config")
    run.add_argument("config", help="path to the experiment YAML")
    run.add_argument("--out", help="write results here instead of reports/<name>/ and runs/<name>/")
    run.add_argument("--quiet", action="store_true", help="print only the summary table")
    run.set_defaults(func=_cmd_run)
    report = sub.add_parser("report", help="build report.md/report.html from results.json files "
                            "(several machines merge side by side per hardware setup)")
    report.add_argument("results", nargs="+", help="results.json files (or their directories)")
    report.add_argument("--out", required=True, help="directory for the report and its plots")
    report.set_defaults(func=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except InputError as e:
        print(f"rerank-eval: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rerank-eval: interrupted; finished stages are on disk", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
