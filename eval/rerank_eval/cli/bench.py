"""``rerank-eval bench``: time the scoring engine against sentence-transformers."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from rerank_eval.errors import InputError

logger = logging.getLogger(__name__)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    bench = sub.add_parser(
        "bench", parents=[common],
        help="time the scoring engine against sentence-transformers on real pairs")
    bench.add_argument("--beir", required=True, help="BEIR folder (corpus, queries, qrels)")
    bench.add_argument("--run", help="TREC run as first stage (default: the project's BM25)")
    bench.add_argument("--depth", type=int, default=100, help="candidates per query (100)")
    bench.add_argument("--queries", type=int, help="seeded random subset of N judged queries")
    bench.add_argument("--seed", type=int, default=0, help="seed of the query subset (0)")
    bench.add_argument("--model", default="packaged:all-minilm-l6-v2",
                       help="cross-encoder: folder, hub id or packaged alias")
    bench.add_argument("--batch-size", type=int, default=32)
    bench.add_argument("--max-length", type=int, default=256)
    bench.add_argument("--max-tokens-per-batch", type=int, help="cap padded tokens per batch")
    bench.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (3)")
    bench.add_argument("--dtypes", default="float32,bfloat16",
                       help="engine dtypes to time, comma-separated (fp32 is always included)")
    bench.add_argument("--compile", action="store_true",
                       help="also time torch.compile(dynamic=True) on the auto dtype")
    bench.add_argument("--device", default="auto")
    bench.add_argument("--threads", type=int, help="torch intra-op threads")
    bench.add_argument("--no-peer", action="store_true", help="skip sentence-transformers")
    bench.add_argument("--backends", default="",
                       help="also time exported artifacts, comma-separated: onnx, onnx-int8, "
                            "openvino, openvino-fp32 (the artifacts extra)")
    bench.add_argument("--json", help="write the full report here")
    bench.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    for name in ("depth", "queries", "rounds", "batch_size", "max_length", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"bench: --{name.replace('_', '-')} must be a positive integer")
    import torch

    from rerank_eval.bench import format_report, load_pairs, run_bench

    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = load_pairs(args.beir, run=args.run, depth=args.depth, queries=args.queries,
                       seed=args.seed)
    logger.info(f"bench: {len(pairs.pairs)} pairs from {pairs.source}")
    report = run_bench(pairs, args.model, batch_size=args.batch_size, max_length=args.max_length,
                       rounds=args.rounds, dtypes=args.dtypes.split(","), compile_=args.compile,
                       device=args.device, max_tokens_per_batch=args.max_tokens_per_batch,
                       peer=not args.no_peer,
                       backends=[b.strip() for b in args.backends.split(",") if b.strip()])
    print(format_report(report))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\njson: {path}")
    return 0
