"""Command line: a thin shell over the Python API. Bad input prints one line, exit code 2."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rerank_eval.compare.commands import add_commands as add_compare_commands
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank-eval",
                                     description="Evaluate and benchmark rerankers.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an experiment from a YAML config")
    run.add_argument("config", help="path to the experiment YAML")
    run.add_argument("--out", help="write results here instead of reports/<name>/ and runs/<name>/")
    run.add_argument("--quiet", action="store_true", help="print only the summary table")
    run.set_defaults(func=_cmd_run)
    add_compare_commands(sub)
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
