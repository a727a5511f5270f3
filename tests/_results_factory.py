"""Write small, hand-made results.json + per_query.csv pairs (the shape the pipeline writes)
so compare and gate tests control every per-query value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd


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
) -> Path:
    """``first_stage``: metric -> qid -> value; ``rerankers``: name -> depth -> metric -> qid
    -> value. Returns the results.json path."""
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
        entry: dict[str, Any] = {"name": rname, "kind": "cross-encoder", "model": rname,
                                 "metrics": metrics}
        if latency_ms and rname in latency_ms:
            entry["latency_ms"] = {str(d): v for d, v in latency_ms[rname].items()}
        entries.append(entry)
    results: dict[str, Any] = {
        "schema_version": 1, "name": name, "dataset": {"id": dataset_id},
        "first_stage": {"name": fs_name, "depth": fs_depth,
                        "metrics": {m: sum(v.values()) / len(v) for m, v in first_stage.items()}},
        "rerankers": entries,
    }
    if hardware is not None:
        results["hardware"] = hardware
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    frame = pd.DataFrame(rows, columns=["system", "stage", "depth", "query_id", "metric", "value"])
    frame.to_csv(out / "per_query.csv", index=False)
    return out / "results.json"
