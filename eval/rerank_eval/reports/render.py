"""report.md and a self-contained report.html (plots embedded as base64 PNG) from one or more
results.json files (``rerank_eval.results.Results``). Both are rendered from the same list of
blocks, so they say the same: the HTML through the jinja2 templates and stylesheet of
reports/page.py, the Markdown with every text escaped by rerank_eval.markdown."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rerank_eval import __version__
from rerank_eval import markdown as md
from rerank_eval.files import atomic_write_text
from rerank_eval.reports import tables
from rerank_eval.reports.cells import frame_rows, numeric_columns
from rerank_eval.reports.page import render_page, table_view
from rerank_eval.reports.plots import draw_all
from rerank_eval.reports.tables import hw_id
from rerank_eval.results import Results, parse_results

Block = tuple[str, Any]  # ("h1"|"h2"|"p"|"ul"|"table"|"img", payload)

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
    b: list[Block | None] = [
        *_introduction(results, setups), *_warnings(results), *lead,
        *_recommendation(results),
        *_images(plots, (("quality_vs_depth.png", "Quality vs rerank depth"),
                         ("latency_vs_depth.png", "Per-query rerank latency vs depth"),
                         ("quality_vs_latency.png", "Quality vs latency, Pareto front"))),
        *_quality_and_cost(results, setups),
        *_agreement(results),
        *_score_distributions(results, plots),
        *_conventions(results),
    ]
    return [x for x in b if x is not None]


def _introduction(results: Sequence[Results], setups: list[str]) -> list[Block | None]:
    """The title, then what was compared: files, hardware setups, datasets, conventions."""
    conv = results[0].conventions
    return [("h1", _title(results)),
            ("p", f"{len(results)} results file(s) on {len(setups)} hardware setup(s): "
             + ", ".join(setups) + ". Datasets: "
             + "; ".join(dict.fromkeys(tables.experiment(r) for r in results))
             + f". Relevance threshold {_or_unknown(conv.relevance_threshold)} (binary "
             "metrics); nDCG graded. Ties: " + _or_unknown(conv.tie_order) + ".")]


def _warnings(results: Sequence[Results]) -> list[Block | None]:
    """What the reader must know first: rerankers failing their sanity probes, latency
    figures measured on a loaded machine."""
    warnings = tables.warnings(results)
    return [("h2", "Warnings"), ("ul", warnings)] if warnings else []


def _recommendation(results: Sequence[Results]) -> list[Block | None]:
    """The recommended depths (with each one's reasoning), then the output cut there."""
    b: list[Block | None] = [("h2", "Recommendation: which depth, on which hardware")]
    b.append(_table(tables.recommendation_frame(results),
                    "Smallest rerank depth within the tolerance of the best depth's quality "
                    "(absolute), optionally under a latency budget; depth 0 (the first stage "
                    "alone) is a candidate, so 'don't rerank' when no depth beats it by more "
                    "than the tolerance. vs first stage: difference in the metric and paired "
                    "t-test p-value. truncated: share of the shortlist's pairs cut at "
                    "max_length. A reranker failing its sanity probes gets none. Per reranker "
                    "and hardware."))
    reasons = []
    for r in results:
        for rr in r.rerankers:
            if rr.recommendation is not None and rr.recommendation.reasoning:
                reasons.append(f"{rr.name} on {hw_id(r)}: "
                               + " ".join(rr.recommendation.reasoning))
    if reasons:
        b.append(("ul", reasons))
    cut = tables.output_cut_frame(results)
    if not cut.empty:  # none when every advice is "don't rerank" or none
        b.append(("h2", "Output cut at the recommended depth (rerank deep, keep few)"))
        b.append(_table(cut, "Quality of the top k kept from the recommended depth's reranked "
                        "list (metric@k: k = results kept; binary metrics at the relevance "
                        "threshold)."))
    return b


def _images(plots: dict[str, Path], wanted: Sequence[tuple[str, str]]) -> list[Block | None]:
    """A heading and the image of each (file name, caption) in ``wanted`` that was drawn."""
    b: list[Block | None] = []
    for name, caption in wanted:
        if name in plots:
            b.append(("h2", caption))
            b.append(("img", (plots[name], caption)))
    return b


def _quality_and_cost(results: Sequence[Results], setups: list[str]) -> list[Block | None]:
    """Quality per depth, latency per query, bulk throughput and the hardware they ran on."""
    first = results[0]
    conv = first.conventions
    lat_cfg = first.config.latency
    b: list[Block | None] = [("h2", "Quality per depth")]
    b.append(_table(tables.quality_frame(results),
                    "Mean over evaluated queries; metric@k cut at k ranks; below depth d the "
                    "first-stage order continues; depth 0 = the first stage alone. vs first "
                    "stage: reranked minus first stage on the same queries, paired t-test p. "
                    "'all setups': identical on every setup."))
    context = tables.context_length_frame(results)
    if not context.empty:
        b.append(("h2", "Quality vs context length (max_lengths)"))
        b.append(_table(context, "The shortlist scored once per max_length (query first, "
                        "only the passage cut); truncated: share of pairs cut at that length; "
                        "pairs/s of that bulk pass; p95 rerank latency per query."))
    long_docs = tables.long_docs_frame(results)
    if not long_docs.empty:
        b.append(("h2", "Long documents (long_docs)"))
        b.append(_table(long_docs, "Documents split into overlapping token windows, each "
                        "window scored with the query and aggregated (maxp: max, sump: sum; "
                        "firstp: first window only); pairs scored counts (query, window) "
                        "pairs."))
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
                    "queries excluded; the score cache is bypassed." + _sampling(results)))
    b.append(("h2", "Throughput of the bulk scoring pass"))
    b.append(_table(tables.throughput_frame(results),
                    (conv.throughput or "pairs scored / wall time of the bulk pass")
                    + ". dtype: what each reranker computed in (dtype: auto resolves per "
                    "machine: bf16 on a CPU with native bf16, fp16 on a GPU, else fp32); "
                    "rerankers in different dtypes differ in speed for that reason too."))
    api = tables.api_cost_frame(results)
    listwise = tables.listwise_frame(results)
    if not api.empty or not listwise.empty:
        b.append(("h2", "API cost and listwise answers"))
        b.append(_table(api, "Requests sent (cache hits cost nothing), retries of 429/5xx/"
                             "timeouts, billed units and cost at the configured price."))
        b.append(_table(listwise,
                        "Listwise rerankers: each depth d is its own sliding-window pass over "
                        "the first stage's top d (requests/windows per depth; cached windows "
                        "send nothing). Answer repairs count distinct window answers: wrong "
                        "format (not '[i] > [j] > ...'), repetition, out of range, missing "
                        "(appended in input order), kept order (no identifier at all)."))
    b.append(("h2", "Hardware setups"))
    id_rule = first.hardware.id_rule if first.hardware else None
    b.append(_table(tables.hardware_frame(results), "id = " + (id_rule or "see docs")))
    return b


def _agreement(results: Sequence[Results]) -> list[Block | None]:
    """How closely rerankers declaring one model agree (when any do)."""
    frame = tables.agreement_frame(results)
    if frame.empty:
        return []
    return [("h2", "Agreement across backends (same model)"),
            _table(frame, tables.AGREEMENT_CAPTION)]


def _score_distributions(results: Sequence[Results], plots: dict[str, Path]
                         ) -> list[Block | None]:
    """The raw score histograms and quantiles (when the plot was drawn)."""
    if "score_distributions.png" not in plots:
        return []
    return [("h2", "Score distributions"),
            ("img", (plots["score_distributions.png"],
                     "Raw model scores over the scored shortlist")),
            _table(tables.score_quantile_frame(results),
                   "Raw model score quantiles over all scored (query, passage) pairs.")]


def _conventions(results: Sequence[Results]) -> list[Block | None]:
    """How the numbers were computed, where each results file came from, and by what."""
    conv = results[0].conventions
    return [("h2", "Conventions"),
            ("ul", [f"{k}: {v}" for k, v in conv.model_dump(mode="json").items()
                    if v is not None]),
            ("ul", [f"source: {r.source or 'this run'} (hardware {hw_id(r)})"
                    for r in results]),
            ("p", f"Generated by rerank-eval {__version__}.")]


def _sampling(results: Sequence[Results]) -> str:
    """How long latency sampling took and whether it can be trusted, per reranker."""
    parts = []
    for r in results:
        for rr in r.rerankers:
            setup = rr.latency_setup
            if setup is None or setup.seconds is None:
                continue
            trust = ("reliable" if setup.reliable else "UNRELIABLE: "
                     + "; ".join(setup.unreliable_reasons or []))
            parts.append(f"{rr.name}: sampled in {setup.seconds:.1f} s, {trust}")
    return (" " + ". ".join(parts) + ".") if parts else ""


def _or_unknown(value: Any) -> str:
    return "?" if value is None else str(value)


def to_markdown(blocks: Sequence[Block]) -> str:
    """report.md: every name and text escaped (rerank_eval.markdown), so none becomes HTML, a
    link or a new table row."""
    out: list[str] = []
    for kind, payload in blocks:
        if kind == "h1":
            out.append(f"# {md.escape(payload)}\n")
        elif kind == "h2":
            out.append(f"## {md.escape(payload)}\n")
        elif kind == "p":
            out.append(f"{md.escape(payload)}\n")
        elif kind == "ul":
            out.append("\n".join(f"- {md.escape(x)}" for x in payload) + "\n")
        elif kind == "table":
            df, caption = payload
            header, rows = frame_rows(df)
            out.append(md.table(header, rows, numeric_columns(header, rows))
                       + f"\n\n*{md.escape(caption)}*\n")
        elif kind == "img":
            path, caption = payload
            out.append(f"![{md.escape(caption)}]({Path(path).name})\n")
    return "\n".join(out)


def to_html(blocks: Sequence[Block], title: str) -> str:
    """One file, no external resources: the stylesheet is inlined, images are data URIs; the
    template (templates/report.html.j2) escapes every text."""
    views: list[dict[str, Any]] = []
    for kind, payload in blocks:
        if kind in {"h1", "h2", "p"}:
            views.append({"kind": kind, "text": str(payload)})
        elif kind == "ul":
            views.append({"kind": kind, "items": [str(x) for x in payload]})
        elif kind == "table":
            df, caption = payload
            views.append({"kind": kind, "table": table_view(*frame_rows(df), caption=caption)})
        elif kind == "img":
            path, caption = payload
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            views.append({"kind": kind, "caption": caption, "png_base64": data})
    return render_page("report.html.j2", title, blocks=views)


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
