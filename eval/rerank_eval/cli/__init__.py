"""Command line: a thin shell over the Python API. Bad input prints one line, exit code 2.

One module per subcommand (``run``, ``bench``, ``compare`` with ``gate``, ``agree``,
``report``, ``cache``), each with ``register(subparsers, common)`` and a command that imports its
heavy dependencies (torch, ranx, scipy, transformers) only when it runs, so ``rerank-eval --help``
answers at once. A new subcommand is one module here plus one entry in ``SUBCOMMANDS``.

Logs: the library logs to ``logging.getLogger("rerank_eval")``; ``main`` sends those records to
stderr as plain lines (INFO by default, DEBUG with ``-v``, errors only with ``--quiet``, which
also turns the progress bars off) for the duration of the command.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rerank_eval.cli import agree, bench, cache, compare, report, run, schema
from rerank_eval.errors import InputError
from rerank_eval.progress import LineFormatter, LogHandler, set_progress_bars

SUBCOMMANDS = (run, bench, compare, agree, report, cache, schema)  # in --help order


def _verbosity_options(parser: argparse.ArgumentParser, default: object) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="store_true", default=default,
                       help="debug log lines too")
    group.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="only errors and the final results: no log lines, no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank-eval",
                                     description="Evaluate and benchmark rerankers.")
    _verbosity_options(parser, False)
    # The same options after the subcommand (``rerank-eval run x.yaml --quiet``); SUPPRESS keeps
    # a subcommand from overwriting what was given before it.
    common = argparse.ArgumentParser(add_help=False)
    _verbosity_options(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.register(sub, common)
    return parser


@contextmanager
def cli_logging(*, verbose: bool = False, quiet: bool = False) -> Iterator[None]:
    """The ``rerank_eval`` logger to stderr while a command runs (INFO; DEBUG with
    ``verbose``; ERROR and no progress bars with ``quiet``); restored afterwards, so calling
    ``main`` twice in one process (tests) leaves no trace."""
    logger = logging.getLogger("rerank_eval")
    handler = LogHandler()
    handler.setFormatter(LineFormatter())
    level = logger.level
    logger.setLevel(logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO)
    logger.addHandler(handler)
    bars = set_progress_bars(False) if quiet else None
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        if quiet:
            set_progress_bars(bars)


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
    args.argv = ["rerank-eval", *(sys.argv[1:] if argv is None else argv)]  # for provenance
    try:
        with cli_logging(verbose=args.verbose, quiet=args.quiet):
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

