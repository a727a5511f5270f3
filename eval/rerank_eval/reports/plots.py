"""Report figures (matplotlib, Agg, no pyplot state) drawn from results.json files alone."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from rerank_eval.files import atomic_write_bytes
from rerank_eval.reports.tables import experiment, hw_id, metric_names, rec_metric
from rerank_eval.results import Results

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


class _Styles:
    """Stable colour per system and marker/line style per hardware setup."""

    def __init__(self, results: Sequence[Results]):
        systems = list(dict.fromkeys(rr.name for r in results for rr in r.rerankers))
        setups = list(dict.fromkeys(hw_id(r) for r in results))
        exps = list(dict.fromkeys(experiment(r) for r in results))
        self.color = {s: f"C{i % 10}" for i, s in enumerate(systems)}
        self.marker = {h: MARKERS[i % len(MARKERS)] for i, h in enumerate(setups)}
        self.many_hw = len(setups) > 1
        self.many_exp = len(exps) > 1

    def label(self, r: Results, system: str, with_hw: bool = True) -> str:
        parts = [system]
        if with_hw and self.many_hw:
            parts.append(hw_id(r))
        if self.many_exp:
            parts.append(experiment(r))
        return " · ".join(parts)


def _value(value: float | None) -> float:
    """A value to plot: a gap (NaN) where there is none."""
    return math.nan if value is None else value


def _save(fig: Figure, path: Path) -> Path:
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110, bbox_inches="tight")
    return atomic_write_bytes(path, png.getvalue())


def _depth_axis(ax, depths: Sequence[int]) -> None:
    ax.set_xscale("log")
    ax.set_xticks(sorted(set(depths)))
    ax.set_xticklabels([str(d) for d in sorted(set(depths))])
    ax.minorticks_off()
    ax.grid(True, alpha=0.3)


def quality_vs_depth(results: Sequence[Results], path: Path) -> Path | None:
    """One panel per configured metric; a line per reranker, first stage dashed."""
    metrics = metric_names(results)[:4]
    if not metrics or not any(r.rerankers for r in results):
        return None
    st = _Styles(results)
    cols = 2 if len(metrics) > 1 else 1
    rows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(5.2 * cols, 3.6 * rows))
    seen: set[tuple] = set()
    all_depths: list[int] = []
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(rows, cols, i + 1)
        for r in results:
            fs_value = r.first_stage.metrics.get(metric)
            key = ("fs", experiment(r), metric)
            if fs_value is not None and key not in seen:
                seen.add(key)
                ax.axhline(fs_value, color="grey", ls="--", lw=1,
                           label=f"{r.first_stage.name} (first stage)")
            for rr in r.rerankers:
                key = (experiment(r), rr.name, metric)
                if key in seen:
                    continue  # quality does not depend on hardware: draw it once
                seen.add(key)
                depths = rr.depths()
                values = [_value(rr.metrics[str(d)].get(metric)) for d in depths]
                all_depths += depths
                ax.plot(depths, values, marker="o", color=st.color[rr.name],
                        label=st.label(r, rr.name, with_hw=False))
                rec = rr.recommended_depth
                if metric == rec_metric(r) and rec and str(rec) in rr.metrics:
                    ax.plot([rec], [rr.metrics[str(rec)][metric]], marker="*", ms=16,
                            color=st.color[rr.name], mec="black", ls="none")
        _depth_axis(ax, all_depths)
        ax.set_xlabel("rerank depth d (candidates reranked)")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} vs rerank depth")
        ax.legend(fontsize=7)
    fig.suptitle("Quality vs depth (★ = recommended depth)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def latency_vs_depth(results: Sequence[Results], path: Path) -> Path | None:
    """p50 (solid) and p95 (dashed) per-query rerank latency per reranker and setup."""
    st = _Styles(results)
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    depths_all: list[int] = []
    drawn = False
    for r in results:
        for rr in r.rerankers:
            lat = rr.latency_ms
            depths = sorted(int(d) for d in lat if lat[d].p50 is not None)
            if not depths:
                continue
            drawn = True
            depths_all += depths
            color, marker = st.color[rr.name], st.marker[hw_id(r)]
            ax.plot(depths, [_value(lat[str(d)].p50) for d in depths], marker=marker,
                    color=color, label=st.label(r, rr.name) + " p50")
            ax.plot(depths, [_value(lat[str(d)].p95) for d in depths], marker=marker, color=color,
                    ls="--", alpha=0.7, label=st.label(r, rr.name) + " p95")
        fs_lat = r.first_stage.latency_ms
        if fs_lat is not None and fs_lat.p50 is not None:
            ax.axhline(fs_lat.p50, color="grey", ls=":", lw=1,
                       label=f"{r.first_stage.name} first stage p50"
                       + (f" · {hw_id(r)}" if st.many_hw else ""))
    if not drawn:
        return None
    _depth_axis(ax, depths_all)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("rerank depth d (candidates per query, one scoring call)")
    ax.set_ylabel("latency per query (ms, wall clock)")
    ax.set_title("Rerank latency vs depth")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both latency (lower) and quality (higher)."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def quality_vs_latency(results: Sequence[Results], path: Path) -> Path | None:
    """Every (reranker, depth) as a point, and the first stage alone (depth 0, no reranking)
    as the baseline point; the Pareto front per setup across models includes it. Latency is
    per query, first stage + rerank (p50), where the first stage was timed."""
    st = _Styles(results)
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.add_subplot(1, 1, 1)
    groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
    metric = rec_metric(results[0])
    baselines = []
    for r in results:
        fs_lat = r.first_stage.latency_ms
        fs_ms = fs_lat.p50 if fs_lat is not None and fs_lat.p50 is not None else None
        for rr in r.rerankers:
            lat = rr.latency_ms
            depths = [d for d in sorted(lat, key=int)
                      if lat[d].p50 is not None and metric in rr.metrics.get(d, {})]
            pts = [(_value(lat[d].p50) + (fs_ms or 0.0), rr.metrics[d][metric]) for d in depths]
            if not pts:
                continue
            groups.setdefault((hw_id(r), experiment(r)), []).extend(pts)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], ls="none",
                    marker=st.marker[hw_id(r)], color=st.color[rr.name],
                    label=st.label(r, rr.name))
            for d, (x, y) in zip(depths, pts):
                ax.annotate(f"d={d}", (x, y), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
        fs_q = r.first_stage.metrics.get(metric)
        key = (hw_id(r), experiment(r))
        if fs_q is not None and key in groups:
            baselines.append((r, key, fs_ms, fs_q))
    if not groups:
        return None
    for r, key, fs_ms, fs_q in baselines:
        x = fs_ms if fs_ms else min(p[0] for p in groups[key]) / 2
        groups[key].append((x, fs_q))
        note = "" if fs_ms else ", latency not timed"
        ax.plot([x], [fs_q], ls="none", marker="X", ms=9, color="grey",
                label=st.label(r, f"{r.first_stage.name} (first stage alone{note})"))
        ax.annotate("d=0", (x, fs_q), textcoords="offset points", xytext=(4, -10), fontsize=7)
    styles = ["-", "-.", ":", "--"]
    for i, ((hw, exp), pts) in enumerate(groups.items()):
        front = pareto_front(pts)
        label = "Pareto front" + (f" · {hw}" if st.many_hw else "") + (
            f" · {exp}" if st.many_exp else "")
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="black",
                lw=1, alpha=0.6, ls=styles[i % len(styles)], label=label)
    ax.set_xscale("log")
    ax.grid(True, which="both", alpha=0.3)
    timed_fs = any(fs_ms for _, _, fs_ms, _ in baselines)
    ax.set_xlabel("latency per query (ms, p50"
                  + (", first stage + rerank" if timed_fs else ", rerank") + ", log scale)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs latency (every model and depth; d=0: first stage alone)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def score_distributions(results: Sequence[Results], path: Path) -> Path | None:
    """Raw score histograms per reranker: judged-relevant vs other shortlist pairs."""
    panels = []
    seen = set()
    for r in results:
        for rr in r.rerankers:
            dist = rr.score_distribution
            key = (experiment(r), rr.name)
            if dist is not None and dist.count and dist.histogram and key not in seen:
                seen.add(key)
                panels.append((r, rr.name, dist.histogram, dist.relevant_rule))
    if not panels:
        return None
    st = _Styles(results)
    cols = min(2, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(5.2 * cols, 3.4 * rows))
    for i, (r, name, h, _rule) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        edges = np.asarray(h.edges)
        for cls, color in (("other", "grey"), ("relevant", st.color[name])):
            counts = np.asarray(getattr(h, cls), dtype=float)
            total = counts.sum()
            if total:
                ax.stairs(counts / total, edges, fill=True, alpha=0.45, color=color,
                          label=f"{cls} ({int(total)} pairs)")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.set_xlabel("raw model score")
        ax.set_ylabel("share of pairs in class")
        ax.set_title(st.label(r, name, with_hw=False), fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(f"Score distributions over the shortlist ({panels[0][3]})",
                 fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


PLOTS = [
    ("quality_vs_depth.png", quality_vs_depth, "Quality vs rerank depth"),
    ("latency_vs_depth.png", latency_vs_depth, "Latency vs rerank depth"),
    ("quality_vs_latency.png", quality_vs_latency, "Quality vs latency (Pareto front)"),
    ("score_distributions.png", score_distributions, "Score distribution per reranker"),
]


def draw_all(results: Sequence[Results], out_dir: Path) -> list[tuple[Path, str]]:
    """Write every plot that has data; returns (path, caption) pairs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = []
    for name, fn, caption in PLOTS:
        path = fn(results, out_dir / name)
        if path is not None:
            drawn.append((path, caption))
    return drawn
