"""``rerank-eval report``: report.md/report.html from results.json files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    report = sub.add_parser("report", parents=[common],
                            help="build report.md/report.html from results.json files "
                                 "(several machines merge side by side per hardware setup)")
    report.add_argument("results", nargs="+", help="results.json files (or their directories)")
    report.add_argument("--out", required=True, help="directory for the report and its plots")
    report.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from rerank_eval.reports.render import write_report
    from rerank_eval.reports.tables import hw_id, load_results

    results = load_results(args.results)
    path = write_report(results, Path(args.out))
    setups = sorted(set(hw_id(r) for r in results))
    print(f"report: {path}\n        {path.with_suffix('.md')}\n"
          f"{len(results)} results file(s), hardware setups: {', '.join(setups)}")
    return 0
