"""Audit what a reranker did to the evidence: relevant passages it dropped or rescued.

A reranker decides which passages reach the output cut ``k`` (what an LLM or a user sees).
At each depth d > k it can push a relevant passage that the first stage had in its top k
below k (*dropped*), or lift one from first-stage ranks k+1..d into the top k (*rescued*).
Counting only aggregate metrics hides both; this module lists them with both ranks.

Also here: the distribution of the raw model scores (a reranker whose scores collapse to one
value, or whose range shifts between checkpoints, shows up here before it shows in metrics).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rerank_eval import markdown as md
from rerank_eval.files import atomic_open, atomic_write_text
from rerank_eval.params import Params, PositiveInt
from rerank_eval.runs import rerank_at_depth

AUDIT_CSV = "audit.csv"
AUDIT_MD = "audit.md"
SCORE_QUANTILES = {"p5": 5, "p25": 25, "p50": 50, "p75": 75, "p95": 95}
CSV_COLUMNS = ["reranker", "depth", "k", "change", "query_id", "doc_id", "grade",
               "first_stage_rank", "reranked_rank", "rank_change", "score"]


class AuditConfig(Params):
    """The output cut ``k`` the audit checks: which relevant passages the reranker moved
    into or out of the top k (what a user or an LLM sees)."""

    k: PositiveInt = 10


@dataclass
class AuditEvent:
    """One relevant passage that crossed the output cut ``k`` because of the reranker."""

    reranker: str
    depth: int
    k: int
    change: str  # "dropped" (was in first-stage top k, now below) or "rescued" (the reverse)
    query_id: str
    doc_id: str
    grade: int
    first_stage_rank: int
    reranked_rank: int
    rank_change: int  # reranked_rank - first_stage_rank (positive = pushed down)
    score: float


def audit_depth(
    reranker: str,
    first_stage: Mapping[str, Sequence[str]],
    reranked: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    depth: int,
    k: int,
    relevance_threshold: int,
    model_scores: Mapping[str, Mapping[str, float]],
) -> list[AuditEvent]:
    """Relevant passages (grade >= threshold) in the first stage's top-``depth`` that crossed
    the cut ``k`` in either direction. Ranks are 1-based."""
    events: list[AuditEvent] = []
    for q in sorted(qrels):
        fs_docs = list(first_stage.get(q, []))[:depth]
        if not fs_docs:
            continue
        rr_rank = {d: i + 1 for i, d in enumerate(reranked.get(q, [])[:depth])}
        for fs_rank, d in enumerate(fs_docs, start=1):
            grade = int(qrels[q].get(d, 0))
            if grade < relevance_threshold:
                continue
            new_rank = rr_rank[d]
            if fs_rank <= k < new_rank:
                change = "dropped"
            elif new_rank <= k < fs_rank:
                change = "rescued"
            else:
                continue
            events.append(AuditEvent(reranker, depth, k, change, q, d, grade, fs_rank, new_rank,
                                     new_rank - fs_rank,
                                     float(model_scores.get(q, {}).get(d, float("nan")))))
    return events


def score_summary(model_scores: Mapping[str, Mapping[str, float]]) -> dict[str, float | int]:
    """min, p5..p95, max and mean of every raw model score (NaN scores are counted apart)."""
    values = np.array([s for per_q in model_scores.values() for s in per_q.values()],
                      dtype=float)
    finite = values[np.isfinite(values)]
    out: dict[str, float | int] = {"pairs": int(values.size),
                                   "non_finite": int(values.size - finite.size)}
    if finite.size == 0:
        return out
    out["min"] = float(finite.min())
    for name, q in SCORE_QUANTILES.items():
        out[name] = float(np.percentile(finite, q))
    out["max"] = float(finite.max())
    out["mean"] = float(finite.mean())
    return out


def audit_reranker(
    reranker: str,
    first_stage: Mapping[str, Sequence[str]],
    model_scores: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    depths: Sequence[int],
    *,
    k: int,
    relevance_threshold: int,
    reports_dir: Path,
    append: bool,
    per_depth: Mapping[int, Mapping[str, Mapping[str, float]]] | None = None,
) -> dict[str, Any]:
    """Audit one reranker at every depth, write its events to audit.csv/audit.md, and return
    the entries for results.json: ``audit`` totals per depth and ``score_summary``.
    ``per_depth``: scores of each depth's own pass (listwise rerankers) instead of
    ``model_scores`` for all."""
    events: list[AuditEvent] = []
    totals: dict[str, dict[str, int]] = {}
    for depth in depths:
        scores = model_scores if per_depth is None else per_depth[depth]
        run = rerank_at_depth(first_stage, scores, depth, f"{reranker}@{depth}")
        found = audit_depth(reranker, first_stage, run.ranking, qrels, depth, k,
                            relevance_threshold, scores)
        dropped = sum(e.change == "dropped" for e in found)
        totals[str(depth)] = {"k": k, "dropped": dropped, "rescued": len(found) - dropped,
                              "net": len(found) - 2 * dropped}
        events += found
    write_audit(events, reports_dir, append=append)
    return {"audit": totals, "score_summary": score_summary(model_scores)}


def write_audit(events: Sequence[AuditEvent], reports_dir: Path, *, append: bool) -> None:
    """audit.csv (every event; ``append`` keeps the earlier rerankers' rows of this run) and
    audit.md (the largest losses), both rewritten atomically."""
    path = reports_dir / AUDIT_CSV
    rows = read_audit(path) if append and path.is_file() else []
    names = {e.reranker for e in events}
    rows = [r for r in rows if r["reranker"] not in names]
    rows += [{c: str(v) for c, v in asdict(e).items()} for e in events]
    with atomic_open(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(reports_dir / AUDIT_MD, audit_markdown(rows))


def read_audit(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def audit_markdown(rows: Sequence[Mapping[str, str]], largest: int = 10) -> str:
    """Totals per reranker and depth, then the largest losses (biggest rank drops) of each;
    names and ids are escaped (rerank_eval.markdown)."""
    lines = ["# Audit: relevant passages the reranker moved across the output cut", ""]
    if not rows:
        return "\n".join(lines + ["No relevant passage crossed the cut (or depth <= k).", ""])
    groups: dict[tuple[str, int, int], list[Mapping[str, str]]] = {}
    for r in rows:
        groups.setdefault((r["reranker"], int(r["depth"]), int(r["k"])), []).append(r)
    totals = []
    for (name, depth, k), group in groups.items():
        dropped = sum(r["change"] == "dropped" for r in group)
        totals.append([name, depth, k, dropped, len(group) - dropped])
    lines.append(md.table(["reranker", "depth", "k", "dropped", "rescued"], totals))
    for (name, depth, k), group in groups.items():
        losses = sorted((r for r in group if r["change"] == "dropped"),
                        key=lambda r: (-int(r["rank_change"]), r["query_id"], r["doc_id"]))
        if not losses:
            continue
        lines += ["", f"## {md.escape(name)} @ depth {depth}: largest losses below the top {k}",
                  "", md.table(["query", "doc", "grade", "first-stage rank", "reranked rank",
                                "score"],
                               [[r["query_id"], r["doc_id"], r["grade"], r["first_stage_rank"],
                                 r["reranked_rank"], f"{float(r['score']):.4f}"]
                                for r in losses[:largest]])]
    return "\n".join(lines) + "\n"
