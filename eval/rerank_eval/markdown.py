"""Markdown that user text cannot break: every cell, heading, list item and paragraph of a
Markdown file the harness writes (report.md, audit.md, compare --format md) goes through
``escape``; tables through ``table``.

Names and texts come from users (reranker and experiment names, query and document ids, query
text): ``<script>`` must not reach a Markdown renderer as HTML, a ``|`` must not split a table
cell, a newline must not end a table row or start a heading. In the base layer because
analysis/ (audit.md) writes Markdown as well as reports/ and compare/.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# HTML's specials become entities (every Markdown renderer decodes them to text and none
# reads them as markup; a backslash before '<' is not honoured by all renderers).
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Markdown's inline specials get a backslash: code spans, emphasis, links, table cells. An
# underscore inside a word (snake_case, model ids) never makes emphasis and stays bare.
_BACKSLASHED = "\\`*[]|"
_EMPHASIS_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c]+")
# What makes a line a heading or a list item when it starts with it ('>' and '*' are escaped
# anyway, and a block never spans two lines).
_BLOCK_START = re.compile(r"^(#{1,6}|[-+]|\d{1,9}(?=[.)]))(?=[.)]?(\s|$))")


def escape(text: object) -> str:
    """``text`` as literal Markdown on one line: it renders as the same characters (runs of
    line breaks become one space, outer spaces go) and never as HTML, a link, emphasis, code,
    a heading, a list item, or a new table cell or row."""
    s = _LINE_BREAKS.sub(" ", str(text)).strip()
    s = "".join(_ENTITIES.get(c) or ("\\" + c if c in _BACKSLASHED else c) for c in s)
    s = _EMPHASIS_UNDERSCORE.sub(r"\\_", s)
    m = _BLOCK_START.match(s)
    if m is None:
        return s
    at = m.end() if s[0].isdigit() else 0  # "1\. x", "\# x", "\- x"
    return s[:at] + "\\" + s[at:]


def table(header: Sequence[object], rows: Iterable[Sequence[object]],
          numeric: Sequence[bool] | None = None) -> str:
    """A pipe table (GitHub Markdown) with every cell escaped; ``numeric`` columns are
    right-aligned (``---:``)."""
    cols = [escape(h) for h in header]
    rule = ["---:" if numeric and numeric[i] else "---" for i in range(len(cols))]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
