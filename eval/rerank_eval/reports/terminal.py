"""Tables printed to a terminal: every command prints its tables through ``text_table``, so
they look the same everywhere (header, a rule under it, columns two spaces apart, numbers
right-aligned and text left-aligned)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from rerank_eval.reports.cells import frame_rows, numeric_columns, text

GAP = "  "


def text_table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    """Aligned plain text; cells are printed as they are (line breaks become spaces)."""
    head = [_one_line(h) for h in header]
    body = [[_one_line(c) for c in r] + [""] * (len(head) - len(r)) for r in rows]
    numeric = numeric_columns(head, body)
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        return GAP.join(c.rjust(w) if num else c.ljust(w)
                        for c, w, num in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(head), GAP.join("-" * w for w in widths)] + [line(r) for r in body])


def frame_table(df: pd.DataFrame) -> str:
    """``text_table`` of a DataFrame (its index dropped)."""
    return text_table(*frame_rows(df))


def _one_line(value: object) -> str:
    return " ".join(text(value).splitlines())
