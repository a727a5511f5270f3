"""``rerank-eval agree`` (argparse wiring only; the work is in ``rerank_eval.compare.agree``,
imported when the command runs)."""

from __future__ import annotations

import argparse
from typing import Any

from rerank_eval.cli.output import write_or_print
from rerank_eval.compare import options
from rerank_eval.errors import InputError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``agree`` on the CLI's subparsers."""
    p = sub.add_parser(
        "agree", parents=[common],
        help="agreement of rerankers serving one model (torch, ONNX, OpenVINO, servers)",
        description="Per pair: max and mean |Δscore| on a common scale, per-query Kendall "
                    "tau, the share of queries whose top-k set changes, and Δmetric with a "
                    "paired test. With --min-tau or --max-metric-delta it is a gate: exit 1 "
                    "when agreement falls below.")
    p.add_argument("results", metavar="RESULTS", help="results.json (or its folder)")
    p.add_argument("--rerankers", help="A,B[,C...]: compare A with each other one (default: "
                                       "rerankers declaring the same model)")
    p.add_argument("--k", type=int, default=10, help="top-k set compared (default: 10)")
    p.add_argument("--metric", action="append", default=[],
                   help="metric for Δ and the paired test (repeatable; default: ndcg@10)")
    p.add_argument("--depth", type=int, help="reranking depth (default: the largest)")
    p.add_argument("--test", default="t-test", choices=options.TESTS,
                   help="paired test on the per-query metric (default: t-test)")
    p.add_argument("--runs-dir", help="folder with <reranker>.scores.tsv (default: the "
                                      "results' runs_dir)")
    p.add_argument("--min-tau", type=float, help="gate: every query's Kendall tau >= this")
    p.add_argument("--max-metric-delta", type=float,
                   help="gate: every |Δmetric| <= this")
    p.add_argument("--format", default="table", choices=("table", "json"))
    p.add_argument("--out", help="write here instead of stdout")
    p.set_defaults(func=_cmd_agree)


def _cmd_agree(args: argparse.Namespace) -> int:
    from rerank_eval.compare.agree import agree, render_agreement
    from rerank_eval.metrics import parse_metrics

    if args.k < 1:
        raise InputError("--k: must be a positive integer")
    metrics = [m.name for m in parse_metrics(args.metric, "--metric")] or None
    names = None if args.rerankers is None else [n.strip() for n in args.rerankers.split(",")]
    report = agree(args.results, names, k=args.k, metrics=metrics, depth=args.depth,
                   test=args.test, runs_dir=args.runs_dir, min_tau=args.min_tau,
                   max_metric_delta=args.max_metric_delta)
    text = render_agreement(report, args.format)
    write_or_print(text, args.out, "agreement")
    return 1 if report.failures else 0
