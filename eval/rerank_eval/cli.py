"""Command line: a thin shell over the Python API. Bad input prints one line, exit code 2."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from rerank_eval.compare.commands import add_commands as add_compare_commands
from rerank_eval.errors import InputError


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests and notebooks swap it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _LevelPrefix(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def _configure_logging(quiet: bool) -> None:
    """The library logs to ``rerank_eval``; the CLI shows INFO on stderr (warnings only with
    --quiet)."""
    logger = logging.getLogger("rerank_eval")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(_LevelPrefix("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def _cmd_run(args: argparse.Namespace) -> int:
    from rerank_eval.config import SweepConfig, load_config
    from rerank_eval.runner import run_experiment, run_sweep
    from rerank_eval.runner.results import summary_table

    config = load_config(args.config)
    _configure_logging(args.quiet)
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


def _cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from rerank_eval.bench import format_report, load_pairs, run_bench

    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("depth", "queries", "rounds", "batch_size", "max_length", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"bench: --{name.replace('_', '-')} must be a positive integer")
    log = (lambda _msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    pairs = load_pairs(args.beir, run=args.run, depth=args.depth, queries=args.queries,
                       seed=args.seed)
    log(f"bench: {len(pairs.pairs)} pairs from {pairs.source}")
    report = run_bench(pairs, args.model, batch_size=args.batch_size, max_length=args.max_length,
                       rounds=args.rounds, dtypes=args.dtypes.split(","), compile_=args.compile,
                       device=args.device, max_tokens_per_batch=args.max_tokens_per_batch,
                       peer=not args.no_peer, log=log)
    print(format_report(report))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\njson: {path}")
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


def _cmd_cache(args: argparse.Namespace) -> int:
    from rerank_eval.scoring.cache import ScoreCache, cache_file, default_cache_path

    path = cache_file(Path(args.path)) if args.path else default_cache_path()
    if not path.is_file():
        if args.action == "info":
            print(f"score cache: {path} (not created yet: 0 entries)")
            return 0
        raise InputError("no score cache here", path=path)
    with ScoreCache(path) as cache:
        if args.action == "info":
            infos = cache.fingerprints()
            print(f"score cache: {path}\nsize: {cache.size_bytes() / 1e6:.2f} MB\n"
                  f"entries: {sum(i.entries for i in infos)} in {len(infos)} fingerprints")
            for info in infos:
                print(f"  {info.hash[:16]}  {info.entries:>10}  "
                      f"{json.dumps(info.description, sort_keys=True)}")
        elif args.action == "clear":
            n = cache.clear(args.fingerprint)
            which = f"fingerprints {args.fingerprint}*" if args.fingerprint else "all"
            print(f"score cache: {path}: removed {n} entries ({which})")
        else:
            if args.out:
                with open(args.out, "w", encoding="utf-8") as f:
                    n = cache.export(f, args.format)
                print(f"exported {n} entries to {args.out}", file=sys.stderr)
            else:
                cache.export(sys.stdout, args.format)
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from rerank_eval.config import config_json_schema

    print(json.dumps(config_json_schema(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank-eval",
                                     description="Evaluate and benchmark rerankers.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an experiment (or a sweep: datasets x rerankers) "
                         "from a YAML config")
    run.add_argument("config", help="path to the experiment or sweep YAML")
    run.add_argument("--out", help="write results here instead of reports/<name>/ and runs/<name>/")
    run.add_argument("--quiet", action="store_true", help="print only the summary table")
    run.add_argument("--no-cache", action="store_true",
                     help="score every pair with the model; neither read nor write the cache")
    run.set_defaults(func=_cmd_run)

    bench = sub.add_parser(
        "bench", help="time the scoring engine against sentence-transformers on real pairs")
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
    bench.add_argument("--json", help="write the full report here")
    bench.add_argument("--quiet", action="store_true", help="no per-round progress")
    bench.set_defaults(func=_cmd_bench)
    add_compare_commands(sub)
    report = sub.add_parser("report", help="build report.md/report.html from results.json files "
                            "(several machines merge side by side per hardware setup)")
    report.add_argument("results", nargs="+", help="results.json files (or their directories)")
    report.add_argument("--out", required=True, help="directory for the report and its plots")
    report.set_defaults(func=_cmd_report)

    cache = sub.add_parser("cache", help="inspect, export or clear the score cache")
    cache.add_argument("action", choices=["info", "clear", "export"])
    cache.add_argument("--path", help="cache file (default: $RERANK_EVAL_CACHE or "
                       "~/.cache/rerank-eval/scores.sqlite)")
    cache.add_argument("--fingerprint", help="clear: only fingerprints starting with this")
    cache.add_argument("--format", choices=["tsv", "jsonl"], default="tsv",
                       help="export format (default tsv)")
    cache.add_argument("--out", help="export: write here instead of stdout")
    cache.set_defaults(func=_cmd_cache)

    schema = sub.add_parser("schema", help="print the JSON Schema of config files (for editor "
                            "completion and checks of configs/*.yaml)")
    schema.set_defaults(func=_cmd_schema)
    return parser


_terminated = threading.Event()  # SIGTERM arrived (Ray re-raises interrupts as plain ones)


def _raise_terminated(signum: int, _frame: object) -> None:
    """SIGTERM stops a run like Ctrl-C (finished work kept), with exit code 143."""
    _terminated.set()
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # Tokenize on every core (Rust threads; the GIL is released): on a GPU, tokenization is
    # what feeds the model. Set explicitly so a later fork (Ray start-up, subprocesses) does
    # not print the tokenizers library's fork warning; no child of ours tokenizes.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    # SIGTERM (kill, CI time-outs, container stops) stops a run as Ctrl-C does. SIGINT keeps
    # Python's handler, or stays ignored where the parent ignored it (a background job of a
    # non-interactive shell), as Unix programs do: send SIGTERM to such a run.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except InputError as e:
        print(f"rerank-eval: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        what = "terminated" if _terminated.is_set() else "interrupted"
        print(f"rerank-eval: {what}; finished stages are on disk and scored pairs in the "
              "score cache: run the same command again to resume", file=sys.stderr)
        return 143 if _terminated.is_set() else 130
    except BrokenPipeError:
        # stdout closed early (e.g. `rerank-eval cache export | head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    raise SystemExit(main())
