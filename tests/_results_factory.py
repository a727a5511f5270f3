"""Write small, hand-made results.json + per_query.csv pairs (the results model the pipeline
writes, ``rerank_eval.results``) so compare and gate tests control every per-query value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from rerank_eval.results import (
    DatasetSummary,
    FirstStage,
    Hardware,
    LatencyStats,
    RerankerEntry,
    Results,
    Sanity,
    results_json,
)


def write_results(
    out: Path,
    *,
    first_stage: dict[str, dict[str, float]],
    rerankers: dict[str, dict[int, dict[str, dict[str, float]]]],
    name: str = "exp",
    dataset_id: str = "toy",
    fs_name: str = "bm25",
    fs_depth: int = 100,
    hardware: dict[str, Any] | None = None,
    latency_ms: dict[str, dict[int, dict[str, float]]] | None = None,
    sanity: dict[str, Sanity] | None = None,
) -> Path:
    """``first_stage``: metric -> qid -> value; ``rerankers``: name -> depth -> metric -> qid
    -> value; ``sanity``: name -> its probes' outcome. Returns the results.json path."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for metric, values in first_stage.items():
        rows += [(fs_name, "first_stage", fs_depth, q, metric, v) for q, v in values.items()]
    entries = []
    for rname, per_depth in rerankers.items():
        metrics = {}
        for depth, per_metric in per_depth.items():
            metrics[str(depth)] = {m: sum(v.values()) / len(v) for m, v in per_metric.items()}
            for metric, values in per_metric.items():
                rows += [(rname, "reranker", depth, q, metric, v) for q, v in values.items()]
        latency = (latency_ms or {}).get(rname, {})
        entries.append(RerankerEntry(
            name=rname, kind="cross-encoder", model=rname, metrics=metrics,
            latency_ms={str(d): LatencyStats(**v) for d, v in latency.items()},
            sanity=(sanity or {}).get(rname)))
    results = Results(
        name=name, dataset=DatasetSummary(id=dataset_id),
        hardware=None if hardware is None else Hardware(**hardware),
        first_stage=FirstStage(
            name=fs_name, depth=fs_depth,
            metrics={m: sum(v.values()) / len(v) for m, v in first_stage.items()}),
        rerankers=entries)
    (out / "results.json").write_text(results_json(results), encoding="utf-8")
    frame = pd.DataFrame(rows, columns=["system", "stage", "depth", "query_id", "metric", "value"])
    frame.to_csv(out / "per_query.csv", index=False)
    return out / "results.json"
