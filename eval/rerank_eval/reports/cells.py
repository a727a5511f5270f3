"""One table shape for every renderer (terminal, Markdown, HTML): a header and rows of cell
text, and which columns hold numbers (right-aligned everywhere)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

# 0.4123, -1.2e-05, +0.0310, 12,345, <0.0001 (3.5 ms is text); "—", "-" and "" are blanks.
_NUMBER = re.compile(r"^[<>≤≥]?[+\-−]?(\d[\d,]*(\.\d*)?|\.\d+)([eE][+\-]?\d+)?%?$")
_BLANKS = {"", "—", "-", "n/a", "none", "nan"}

Rows = list[list[str]]


def text(value: Any) -> str:
    """A cell's text: missing values (None, NaN) are an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return str(value)


def frame_rows(df: pd.DataFrame) -> tuple[list[str], Rows]:
    """``df`` (its index dropped) as a header and rows of cell text."""
    return ([text(c) for c in df.columns],
            [[text(v) for v in row] for row in df.itertuples(index=False)])


def numeric_columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[bool]:
    """Columns whose every non-blank cell is a number (and that hold at least one)."""
    out = []
    for i in range(len(header)):
        values = [str(r[i]).strip() for r in rows if i < len(r)]
        filled = [v for v in values if v.lower() not in _BLANKS]
        out.append(bool(filled) and all(_NUMBER.match(v) for v in filled))
    return out
