"""HTML pages from jinja2 templates (``templates/``) with one stylesheet, inlined so every page
stays one self-contained file: ``rerank-eval report`` (report.html) and ``rerank-eval compare
--format html`` look alike. Autoescape is on: every name and text is escaped by the template."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

from rerank_eval.reports.cells import numeric_columns

STYLESHEET = "report.css"


@dataclass
class TableView:
    """A table as the templates draw it (``macros.html.j2``: ``table``)."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""
    row_classes: list[str] = field(default_factory=list)  # CSS class per row ("" for none)
    numeric: list[bool] = field(init=False)

    def __post_init__(self) -> None:
        self.numeric = numeric_columns(self.header, self.rows)
        self.row_classes = list(self.row_classes) or [""] * len(self.rows)


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("rerank_eval.reports", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True)


def stylesheet() -> str:
    """The one stylesheet every page inlines (templates/report.css)."""
    env = environment()
    assert env.loader is not None
    return env.loader.get_source(env, STYLESHEET)[0]


def render_page(template: str, title: str, **context: Any) -> str:
    """``template`` (a page extending ``page.html.j2``) with ``title`` and the stylesheet."""
    css = stylesheet()
    if "</" in css:  # would end the <style> element early
        raise ValueError(f"{STYLESHEET} must not contain '</'")
    return environment().get_template(template).render(
        title=title, stylesheet=Markup(css), **context)


def table_view(header: Sequence[object], rows: Sequence[Sequence[object]], caption: str = "",
               row_classes: Sequence[str] = ()) -> TableView:
    return TableView([str(h) for h in header], [[str(c) for c in r] for r in rows], caption,
                     list(row_classes))
