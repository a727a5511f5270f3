"""report.md and a self-contained report.html (plots embedded as base64 PNG) from one or more
results.json files (``rerank_eval.results.Results``). Both are rendered from the same list of
blocks, so they say the same."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rerank_eval import __version__
from rerank_eval.files import atomic_write_text
from rerank_eval.reports import tables
from rerank_eval.reports.plots import draw_all
from rerank_eval.reports.tables import hw_id
from rerank_eval.results import Results, parse_results

Block = tuple[str, Any]  # ("h1"|"h2"|"p"|"ul"|"table"|"img", payload)

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1150px;margin:2em auto;
padding:0 1em;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.3em}
h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #eee;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.86em}
th,td{border:1px solid #d0d0d0;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.caption{font-size:.85em;color:#555;margin:.2em 0 1.4em}
figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}.scroll{overflow-x:auto}
"""


def _title(results: Sequence[Results]) -> str:
    names = list(dict.fromkeys(r.name or "?" for r in results))
    return "rerank-eval report: " + ", ".join(names)


def _table(df: pd.DataFrame, caption: str) -> Block | None:
    """A table block; a column holding one experiment for every row moves to the caption."""
    if df.empty:
        return None
    if "experiment" in df.columns and df["experiment"].nunique() == 1:
        sep = " " if caption.endswith(".") else ". "
        caption = f"{caption}{sep}Experiment: {df['experiment'].iloc[0]}."
        df = df.drop(columns="experiment")
    return ("table", (df, caption))


def build_blocks(results: Sequence[Results], plots: dict[str, Path],
                 lead: Sequence[Block] = ()) -> list[Block]:
    """The report's content, in order; ``lead`` blocks (e.g. a sweep's table) come right
    after the introduction."""
    setups = list(dict.fromkeys(hw_id(r) for r in results))
    first = results[0]
    conv = first.conventions
    lat_cfg = first.config.latency
    b: list[Block | None] = [("h1", _title(results))]
    b.append(("p", f"{len(results)} results file(s) on {len(setups)} hardware setup(s): "
              + ", ".join(setups) + ". Datasets: "
              + "; ".join(dict.fromkeys(tables.experiment(r) for r in results))
              + f". Relevance threshold {_or_unknown(conv.relevance_threshold)} (binary "
              "metrics); nDCG graded. Ties: " + _or_unknown(conv.tie_order) + "."))
    b.extend(lead)
    b.append(("h2", "Recommendation: which depth, on which hardware"))
    b.append(_table(tables.recommendation_frame(results),
                    "Smallest rerank depth within the tolerance of the best depth's quality "
                    "(absolute), optionally under a latency budget. Per reranker and hardware."))
    reasons = []
    for r in results:
        for rr in r.rerankers:
            if rr.recommendation is not None and rr.recommendation.reasoning:
                reasons.append(f"{rr.name} on {hw_id(r)}: "
                               + " ".join(rr.recommendation.reasoning))
    if reasons:
        b.append(("ul", reasons))
    b.append(("h2", "Output cut at the recommended depth (rerank deep, keep few)"))
    b.append(_table(tables.output_cut_frame(results),
                    "Quality of the top k kept from the recommended depth's reranked list "
                    "(metric@k: k = results kept; binary metrics at the relevance threshold)."))
    for name, caption in (("quality_vs_depth.png", "Quality vs rerank depth"),
                          ("latency_vs_depth.png", "Per-query rerank latency vs depth"),
                          ("quality_vs_latency.png", "Quality vs latency, Pareto front")):
        if name in plots:
            b.append(("h2", caption))
            b.append(("img", (plots[name], caption)))
    b.append(("h2", "Quality per depth"))
    b.append(_table(tables.quality_frame(results),
                    "Mean over evaluated queries; metric@k cut at k ranks; below depth d the "
                    "first-stage order continues. 'all setups': identical on every setup."))
    b.append(("h2", "Latency per query"))
    if len(setups) > 1:
        for stat in ("p50", "p95"):
            b.append(_table(tables.latency_side_by_side(results, stat),
                            f"Rerank latency {stat} per query (ms), hardware setups side by "
                            "side."))
    b.append(_table(tables.latency_frame(results),
                    "Wall clock per query in milliseconds; rerank = one scoring call with the "
                    f"query's top-d pairs. Sample: {_or_unknown(lat_cfg and lat_cfg.queries)} "
                    f"queries (seed {_or_unknown(lat_cfg and lat_cfg.seed)}), "
                    f"{_or_unknown(lat_cfg and lat_cfg.warmup)} warm-up "
                    "queries excluded; the score cache is bypassed."))
    b.append(("h2", "Throughput of the bulk scoring pass"))
    b.append(_table(tables.throughput_frame(results),
                    conv.throughput or "pairs scored / wall time of the bulk pass"))
    b.append(("h2", "Hardware setups"))
    id_rule = first.hardware.id_rule if first.hardware else None
    b.append(_table(tables.hardware_frame(results), "id = " + (id_rule or "see docs")))
    if "score_distributions.png" in plots:
        b.append(("h2", "Score distributions"))
        b.append(("img", (plots["score_distributions.png"],
                          "Raw model scores over the scored shortlist")))
        b.append(_table(tables.score_quantile_frame(results),
                        "Raw model score quantiles over all scored (query, passage) pairs."))
    b.append(("h2", "Conventions"))
    b.append(("ul", [f"{k}: {v}" for k, v in conv.model_dump(mode="json").items()
                     if v is not None]))
    b.append(("ul", [f"source: {r.source or 'this run'} (hardware {hw_id(r)})"
                     for r in results]))
    b.append(("p", f"Generated by rerank-eval {__version__}."))
    return [x for x in b if x is not None]


def _or_unknown(value: Any) -> str:
    return "?" if value is None else str(value)


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for kind, payload in blocks:
        if kind == "h1":
            out.append(f"# {payload}\n")
        elif kind == "h2":
            out.append(f"## {payload}\n")
        elif kind == "p":
            out.append(f"{payload}\n")
        elif kind == "ul":
            out.append("\n".join(f"- {_md_cell(x)}" for x in payload) + "\n")
        elif kind == "table":
            df, caption = payload
            cols = [str(c) for c in df.columns]
            lines = ["| " + " | ".join(_md_cell(c) for c in cols) + " |",
                     "|" + "|".join("---" for _ in cols) + "|"]
            lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |"
                      for row in df.itertuples(index=False)]
            out.append("\n".join(lines) + f"\n\n*{caption}*\n")
        elif kind == "img":
            path, caption = payload
            out.append(f"![{caption}]({Path(path).name})\n")
    return "\n".join(out)


def to_html(blocks: Sequence[Block], title: str) -> str:
    """One file, no external resources: images are data URIs."""
    body: list[str] = []
    esc = html.escape
    for kind, payload in blocks:
        if kind in {"h1", "h2"}:
            body.append(f"<{kind}>{esc(str(payload))}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{esc(str(payload))}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{esc(str(x))}</li>" for x in payload) + "</ul>")
        elif kind == "table":
            df, caption = payload
            body.append('<div class="scroll">' + df.to_html(index=False, border=0, escape=True)
                        + f'</div><p class="caption">{esc(caption)}</p>')
        elif kind == "img":
            path, caption = payload
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{esc(caption)}</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_report(results: Sequence[Results | Mapping[str, Any]], out_dir: str | Path,
                 lead: Sequence[Block] = ()) -> Path:
    """Plots (PNG), report.md and report.html in ``out_dir``; returns the HTML path.
    ``results``: Results, or results.json documents (read as ``read_results`` reads files)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    typed = [r if isinstance(r, Results) else parse_results(r) for r in results]
    plots = {p.name: p for p, _ in draw_all(typed, out)}
    blocks = build_blocks(typed, plots, lead)
    atomic_write_text(out / "report.md", to_markdown(blocks))
    path = out / "report.html"
    atomic_write_text(path, to_html(blocks, _title(typed)))
    return path
