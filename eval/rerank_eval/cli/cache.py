"""``rerank-eval cache``: inspect, export or clear the score cache."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO, cast

from rerank_eval.errors import InputError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    cache = sub.add_parser("cache", parents=[common],
                           help="inspect, export or clear the score cache")
    cache.add_argument("action", choices=["info", "clear", "export"])
    cache.add_argument("--path", help="cache file (default: $RERANK_EVAL_CACHE or "
                       "~/.cache/rerank-eval/scores.sqlite)")
    cache.add_argument("--fingerprint", help="clear: only fingerprints starting with this")
    cache.add_argument("--format", choices=["tsv", "jsonl"], default="tsv",
                       help="export format (default tsv)")
    cache.add_argument("--out", help="export: write here instead of stdout")
    cache.set_defaults(func=_cmd_cache)


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
                from rerank_eval.files import atomic_open

                with atomic_open(args.out) as f:
                    n = cache.export(cast(TextIO, f), args.format)  # "w": a text file
                print(f"exported {n} entries to {args.out}", file=sys.stderr)
            else:
                cache.export(sys.stdout, args.format)
    return 0
