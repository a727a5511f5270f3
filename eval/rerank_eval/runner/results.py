"""Writing results.json and per_query.csv from the runner's results (the format readers
rely on is ``reports/results.py``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from rerank_eval import __version__
from rerank_eval.analysis.recommend import RECOMMENDATION_RULE
from rerank_eval.datasets import DOC_TEXT_RULE
from rerank_eval.hardware import ID_RULE
from rerank_eval.metrics.evaluate import CONVENTIONS
from rerank_eval.reports.results import SCHEMA_VERSION
from rerank_eval.reports.terminal import text_table
from rerank_eval.runs import SAVED_SCORE_RULE, TIE_RULE
from rerank_eval.scoring.latency import FIRST_STAGE_RULE, LATENCY_RULE, THROUGHPUT_RULE

if TYPE_CHECKING:
    from rerank_eval.config import ExperimentConfig
    from rerank_eval.datasets import Dataset
    from rerank_eval.metrics import Evaluation


@dataclass
class StageResult:
    """One evaluated system: the first stage, or a reranker at every depth."""

    name: str
    kind: str
    model: str | None
    evaluations: dict[int | None, Evaluation]  # depth -> evaluation (None: first stage)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExperimentResult:
    config: ExperimentConfig
    dataset: Dataset
    first_stage: StageResult
    rerankers: list[StageResult]
    runs_dir: Path
    reports_dir: Path
    timings: dict[str, float] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)


def conventions(result: ExperimentResult) -> dict[str, Any]:
    cfg = result.config
    fs_eval = result.first_stage.evaluations[None]
    return {
        "tie_order": TIE_RULE,
        "saved_run_scores": SAVED_SCORE_RULE,
        "relevance_threshold": cfg.relevance_threshold,
        "relevance_threshold_applies_to": "binary metrics (mrr, recall, map, p); nDCG is graded",
        **CONVENTIONS,
        "queries_without_results": fs_eval.queries_without_results,
        "below_rerank_depth": "first-stage order continues below the reranked top-d",
        "document_text": DOC_TEXT_RULE,
        "self_matches": ("dropped (doc id == query id)" if cfg.dataset.drop_self_matches
                         else "kept (doc id == query id is not removed)"),
        "pair_order": "query first, passage second; only the passage is truncated",
        "metrics_oracle": "equal to trec_eval (pytrec_eval) to 1e-6, tested",
        "rerank_latency": LATENCY_RULE,
        "first_stage_latency": FIRST_STAGE_RULE,
        "throughput": THROUGHPUT_RULE,
        "hardware_id": ID_RULE,
        "recommendation": RECOMMENDATION_RULE,
    }


def _stage_metrics(stage: StageResult) -> dict[str, Any]:
    return {("first_stage" if d is None else str(d)): ev.means
            for d, ev in stage.evaluations.items()}


def results_dict(result: ExperimentResult) -> dict[str, Any]:
    fs = result.first_stage
    fs_eval = fs.evaluations[None]
    rerankers = []
    for stage in result.rerankers:
        entry = {
            "name": stage.name,
            "kind": stage.kind,
            "model": stage.model,
            "metrics": {str(d): ev.means for d, ev in stage.evaluations.items()},
            "pairs_scored": stage.info.get("pairs_scored", 0),
            "pairs_from_cache": stage.info.get("pairs_from_cache", 0),
            "pairs_truncated": stage.info.get("pairs_truncated", 0),
        }
        entry.update({k: v for k, v in stage.info.items()
                      if k not in {"pairs_scored", "pairs_from_cache", "pairs_truncated"}})
        rerankers.append(entry)
    return {
        "schema_version": SCHEMA_VERSION,
        "rerank_eval_version": __version__,
        "name": result.config.name,
        "hardware": result.hardware,
        "config": result.config.resolved(),
        "dataset": {**result.dataset.summary(), "notes": result.dataset.notes},
        "first_stage": {
            "name": fs.name,
            "depth": fs.info["depth"],
            "params": fs.info["params"],
            "metrics": fs_eval.means,
            "queries_evaluated": fs_eval.queries,
            "queries_without_results": fs_eval.queries_without_results,
            "latency_ms": fs.info.get("latency_ms"),
            # recall@k for k up to the depth: the ceiling of any reranker of the top-k
            "recall_curve": fs.info.get("recall_curve"),
        },
        "rerankers": rerankers,
        "conventions": conventions(result),
        "timings_s": result.timings,
        "runs_dir": str(result.runs_dir),
    }


def per_query_frame(result: ExperimentResult) -> pd.DataFrame:
    """Long format: system, depth, query_id, metric, value."""
    rows = []
    for stage, is_first in [(result.first_stage, True)] + [(s, False) for s in result.rerankers]:
        for depth, ev in stage.evaluations.items():
            for metric, values in ev.per_query.items():
                for qid, value in values.items():
                    rows.append((stage.name, "first_stage" if is_first else "reranker",
                                 depth if depth is not None else result.first_stage.info["depth"],
                                 qid, metric, value))
    frame = pd.DataFrame(rows, columns=["system", "stage", "depth", "query_id", "metric", "value"])
    return frame.sort_values(["stage", "system", "depth", "metric", "query_id"],
                             kind="stable").reset_index(drop=True)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_results(result: ExperimentResult) -> Path:
    """Write results.json and per_query.csv (atomically, so a crash never leaves half a file)."""
    out = result.reports_dir
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "results.json", json.dumps(results_dict(result), indent=2) + "\n")
    _atomic_write(out / "per_query.csv", per_query_frame(result).to_csv(index=False))
    return out / "results.json"


def summary_table(result: ExperimentResult) -> str:
    """The table the CLI prints: one row per system and depth, one column per metric."""
    metric_names = [m.name for m in result.config.metrics]
    rows = [[result.first_stage.name, str(result.first_stage.info["depth"])]
            + [f"{result.first_stage.evaluations[None].means[m]:.4f}" for m in metric_names]]
    for stage in result.rerankers:
        for depth, ev in stage.evaluations.items():
            rows.append([stage.name, str(depth)] + [f"{ev.means[m]:.4f}" for m in metric_names])
    return text_table(["system", "depth"] + metric_names, rows)
