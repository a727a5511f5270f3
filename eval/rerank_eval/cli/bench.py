"""``rerank-eval bench``: time the scoring engine against sentence-transformers."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from rerank_eval.errors import InputError
from rerank_eval.files import atomic_write_text

logger = logging.getLogger(__name__)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    bench = sub.add_parser(
        "bench", parents=[common],
        help="time the scoring engine against sentence-transformers (cross-encoders) or the "
             "model card's loop (causal-lm) on real pairs")
    bench.add_argument("--beir", required=True, help="BEIR folder (corpus, queries, qrels)")
    bench.add_argument("--run", help="TREC run as first stage (default: the project's BM25)")
    bench.add_argument("--depth", type=int, default=100, help="candidates per query (100)")
    bench.add_argument("--queries", type=int, help="seeded random subset of N judged queries")
    bench.add_argument("--seed", type=int, default=0, help="seed of the query subset (0)")
    bench.add_argument("--kind", choices=("cross-encoder", "causal-lm"), default="cross-encoder",
                       help="what --model is (cross-encoder)")
    bench.add_argument("--model", default=None,
                       help="folder, hub id or packaged alias (cross-encoder default: "
                            "packaged:all-minilm-l6-v2)")
    bench.add_argument("--template", default="qwen3-reranker",
                       help="causal-lm: template preset (qwen3-reranker)")
    bench.add_argument("--batch-size", type=int, help="pairs per batch (32; causal-lm 16)")
    bench.add_argument("--max-length", type=int, help="tokens per pair (256; causal-lm 512)")
    bench.add_argument("--max-tokens-per-batch", type=int, help="cap padded tokens per batch")
    bench.add_argument("--rounds", type=int,
                       help="interleaved timing rounds (3; causal-lm 1)")
    bench.add_argument("--dtypes", default="float32,bfloat16",
                       help="cross-encoder: engine dtypes to time, comma-separated (fp32 is "
                            "always included; causal-lm: fp32 and auto)")
    bench.add_argument("--compile", action="store_true",
                       help="also time torch.compile(dynamic=True) on the auto dtype")
    bench.add_argument("--device", default="auto")
    bench.add_argument("--threads", type=int, help="torch intra-op threads")
    bench.add_argument("--no-peer", action="store_true",
                       help="skip the peer (sentence-transformers, or the card's loop)")
    bench.add_argument("--backends", default="",
                       help="cross-encoders: also time exported artifacts, comma-separated: onnx, "
                            "onnx-int8, openvino, openvino-fp32 (the artifacts extra)")
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
    llm = args.kind == "causal-lm"
    if llm and args.model is None:
        raise InputError("bench: --kind causal-lm needs --model (a folder or hub id)")
    pairs = load_pairs(args.beir, run=args.run, depth=args.depth, queries=args.queries,
                       seed=args.seed)
    logger.info(f"bench: {len(pairs.pairs)} pairs from {pairs.source}")
    common = {"batch_size": args.batch_size or (16 if llm else 32),
              "max_length": args.max_length or (512 if llm else 256),
              "rounds": args.rounds or (1 if llm else 3), "device": args.device,
              "max_tokens_per_batch": args.max_tokens_per_batch, "peer": not args.no_peer,
              "argv": getattr(args, "argv", None)}
    if llm:
        from rerank_eval.bench.lm import format_lm_report, run_lm_bench

        report = run_lm_bench(pairs, args.model, template=args.template, **common)
        print(format_lm_report(report))
    else:
        report = run_bench(pairs, args.model or "packaged:all-minilm-l6-v2",
                           dtypes=args.dtypes.split(","), compile_=args.compile,
                           backends=[b.strip() for b in args.backends.split(",") if b.strip()],
                           **common)
        print(format_report(report))
    if args.json:
        path = atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
        print(f"\njson: {path}")
    return 0
