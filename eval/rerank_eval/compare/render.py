"""Render a ComparisonReport as a terminal table, Markdown, HTML or JSON: with the same table
printer (reports/terminal.py), Markdown escaping (rerank_eval.markdown) and page template and
stylesheet (reports/page.py) as the rest of rerank-eval."""

from __future__ import annotations

import json

from rerank_eval import markdown as md
from rerank_eval.compare.compare import Cell, ComparisonReport, Row
from rerank_eval.reports.cells import numeric_columns
from rerank_eval.reports.page import render_page, table_view
from rerank_eval.reports.tables import AGREEMENT_CAPTION, agreement_row
from rerank_eval.reports.terminal import text_table

FORMATS = ("table", "md", "html", "json")
_TEST_LABEL = {"t-test": "paired t-test", "wilcoxon": "Wilcoxon signed-rank",
               "randomization": "paired randomization"}
HEADER = ["system", "mean", "diff", "95% CI", "p", "p adj", "sig", "W/T/L"]


def _fmt_p(p: float | None) -> str:
    if p is None:
        return ""
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _cells(row: Row) -> list[str]:
    if row.baseline:
        return [f"{row.system} (baseline)", f"{row.mean:.4f}", "", "", "", "", "", ""]
    ci = f"[{row.ci_low:+.4f}, {row.ci_high:+.4f}]"
    return [row.system, f"{row.mean:.4f}", f"{row.diff:+.4f}", ci, _fmt_p(row.p_value),
            _fmt_p(row.p_adjusted), "*" if row.significant else "",
            f"{row.wins}/{row.ties}/{row.losses}"]


def _title(cell: Cell) -> str:
    depth = "" if cell.depth is None else f" at depth {cell.depth}"
    return f"{cell.metric}{depth}"


def _caption(report: ComparisonReport, cell: Cell) -> str:
    s = report.settings
    test = _TEST_LABEL[s.test] + (f" ({s.permutations} permutations, seed {s.seed})"
                                  if s.test == "randomization" else "")
    text = (f"{cell.queries} queries compared, {cell.queries_dropped} dropped (not in every "
            f"system); {test}; p adj: {s.correction}; * = p adj < {s.alpha}; CI: "
            f"bootstrap ({s.bootstrap} resamples, seed {s.seed}); W/T/L vs baseline")
    if cell.missing_systems:
        text += f"; without values here: {', '.join(cell.missing_systems)}"
    return text


def render(report: ComparisonReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2) + "\n"
    if fmt == "md":
        return _markdown(report)
    if fmt == "html":
        return _html(report)
    return _table(report)


def _row_class(row: Row) -> str:
    return "baseline" if row.baseline else ("significant" if row.significant else "")


AGREEMENT_TITLE = "Agreement across backends (same model)"


def _agreement(report: ComparisonReport) -> tuple[list[str], list[list[str]]]:
    """The inputs' recorded backend agreement as a header and rows (none: no rows)."""
    rows = [{"source": source, **agreement_row(pair)} for source, pair in report.agreement]
    header = list(rows[0]) if rows else []
    return header, [list(r.values()) for r in rows]


def _table(report: ComparisonReport) -> str:
    out = [f"NOTE: {line}" for line in report.settings.allowed_mismatches]
    out += [""] if out else []
    for cell in report.cells:
        out += [f"== {_title(cell)}", text_table(HEADER, [_cells(r) for r in cell.rows]),
                f"({_caption(report, cell)})", ""]
    header, rows = _agreement(report)
    if rows:
        out += [f"== {AGREEMENT_TITLE}", text_table(header, rows), f"({AGREEMENT_CAPTION})", ""]
    return "\n".join(out)


def _markdown(report: ComparisonReport) -> str:
    out = [f"# Comparison against {md.escape(report.settings.baseline)}", ""]
    out += [f"> **Note:** {md.escape(line)}" for line in report.settings.allowed_mismatches]
    out += [""] if report.settings.allowed_mismatches else []
    for cell in report.cells:
        rows = [_cells(r) for r in cell.rows]
        out += [f"## {md.escape(_title(cell))}", "",
                md.table(HEADER, rows, numeric_columns(HEADER, rows)), "",
                f"_{md.escape(_caption(report, cell))}_", ""]
    header, rows = _agreement(report)
    if rows:
        out += [f"## {AGREEMENT_TITLE}", "", md.table(header, rows, numeric_columns(header, rows)),
                "", f"_{md.escape(AGREEMENT_CAPTION)}_", ""]
    return "\n".join(out)


def _html(report: ComparisonReport) -> str:
    """The report's page template and stylesheet (reports/page.py), so both look alike."""
    sections = [{"title": _title(cell),
                 "table": table_view(HEADER, [_cells(r) for r in cell.rows],
                                     caption=_caption(report, cell),
                                     row_classes=[_row_class(r) for r in cell.rows])}
                for cell in report.cells]
    header, rows = _agreement(report)
    if rows:
        sections.append({"title": AGREEMENT_TITLE,
                         "table": table_view(header, rows, caption=AGREEMENT_CAPTION)})
    return render_page("compare.html.j2", f"Comparison against {report.settings.baseline}",
                       sections=sections, notes=report.settings.allowed_mismatches)
