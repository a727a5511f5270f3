"""Where a subcommand's rendered text goes: a file (written atomically) or stdout."""

from __future__ import annotations

import sys

from rerank_eval.files import atomic_write_text


def write_or_print(text: str, out: str | None, what: str) -> None:
    """``text`` to ``out`` (saying so on stderr as ``what: PATH``), else to stdout."""
    if out:
        atomic_write_text(out, text)
        print(f"{what}: {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
