"""Writing results.json and per_query.csv from the runner's results: the runner's
StageResult/ExperimentResult become a ``rerank_eval.results.Results`` (the file's model, which
readers read back with ``read_results``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from rerank_eval import __version__
from rerank_eval.analysis.recommend import RECOMMENDATION_RULE
from rerank_eval.datasets import DOC_TEXT_RULE
from rerank_eval.files import atomic_write_text
from rerank_eval.hardware import ID_RULE
from rerank_eval.metrics.evaluate import CONVENTIONS
from rerank_eval.reports.terminal import text_table
from rerank_eval.results import (
    Conventions,
    DatasetSummary,
    FirstStage,
    Hardware,
    PairAgreement,
    RerankerEntry,
    Results,
    RunConfig,
    SkippedReranker,
    results_json,
)
from rerank_eval.runs import SAVED_SCORE_RULE, TIE_RULE
from rerank_eval.scoring.latency import FIRST_STAGE_RULE, LATENCY_RULE, THROUGHPUT_RULE

if TYPE_CHECKING:
    from rerank_eval.config import ExperimentConfig
    from rerank_eval.datasets import Dataset
    from rerank_eval.metrics import Evaluation


@dataclass
class StageResult:
    """One evaluated system: the first stage, or a reranker at every depth. ``info`` is its
    results.json entry but for what the evaluations give (metrics, queries evaluated), which
    the writer fills in."""

    name: str
    kind: str
    model: str | None
    evaluations: dict[int | None, Evaluation]  # depth -> evaluation (None: first stage)
    info: FirstStage | RerankerEntry


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
    skipped: list[SkippedReranker] = field(default_factory=list)  # optional ones not run
    agreement: list[PairAgreement] = field(default_factory=list)  # same-model pairs, at the end

    def missing(self) -> list[str]:
        """The configured rerankers without results yet (results.json ``missing``); skipped
        optional rerankers are not missing."""
        done = {stage.name for stage in self.rerankers} | {s.name for s in self.skipped}
        return [r.name for r in self.config.rerankers if r.name not in done]


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
        "pair_order": ("query first, passage second; a query longer than half the window "
                       "(less special tokens) is cut to that half (counted in "
                       "queries_truncated), then the passage is cut to fill the window "
                       "(pairs_truncated counts pairs cut either way)"),
        "metrics_oracle": "equal to trec_eval (pytrec_eval) to 1e-6, tested",
        "rerank_latency": LATENCY_RULE,
        "first_stage_latency": FIRST_STAGE_RULE,
        "throughput": THROUGHPUT_RULE,
        "hardware_id": ID_RULE,
        "recommendation": RECOMMENDATION_RULE,
    }


def first_stage_entry(stage: StageResult) -> FirstStage:
    """The first stage's entry with its evaluation's means and query counts."""
    if not isinstance(stage.info, FirstStage):
        raise TypeError(f"{stage.name}: a first stage's info is a FirstStage")
    evaluation = stage.evaluations[None]
    return stage.info.model_copy(update={
        "metrics": evaluation.means, "queries_evaluated": evaluation.queries,
        "queries_without_results": evaluation.queries_without_results})


def reranker_entry(stage: StageResult) -> RerankerEntry:
    """A reranker's entry with its metrics per depth."""
    if not isinstance(stage.info, RerankerEntry):
        raise TypeError(f"{stage.name}: a reranker's info is a RerankerEntry")
    return stage.info.model_copy(update={
        "name": stage.name, "kind": stage.kind, "model": stage.model,
        "metrics": {str(d): ev.means for d, ev in stage.evaluations.items()}})


def results_model(result: ExperimentResult) -> Results:
    """results.json as a model: ``status`` partial (naming the rerankers still ``missing``)
    until every configured reranker has its results."""
    missing = result.missing()
    return Results(
        status="partial" if missing else "complete",
        missing=missing,
        rerank_eval_version=__version__,
        name=result.config.name,
        hardware=Hardware.model_validate(result.hardware) if result.hardware else None,
        config=RunConfig.model_validate(result.config.resolved()),
        dataset=DatasetSummary.model_validate({**result.dataset.summary(),
                                               "notes": result.dataset.notes}),
        first_stage=first_stage_entry(result.first_stage),
        rerankers=[reranker_entry(stage) for stage in result.rerankers],
        skipped=list(result.skipped),
        agreement=list(result.agreement),
        conventions=Conventions.model_validate(conventions(result)),
        timings_s=result.timings,
        runs_dir=str(result.runs_dir),
    )


def results_dict(result: ExperimentResult) -> dict[str, Any]:
    """results.json as a JSON object (exactly what ``write_results`` writes)."""
    return results_model(result).model_dump(mode="json")


def per_query_frame(result: ExperimentResult) -> pd.DataFrame:
    """Long format: system, depth, query_id, metric, value."""
    rows = []
    first_depth = first_stage_entry(result.first_stage).depth
    for stage, is_first in [(result.first_stage, True)] + [(s, False) for s in result.rerankers]:
        for depth, ev in stage.evaluations.items():
            for metric, values in ev.per_query.items():
                for qid, value in values.items():
                    rows.append((stage.name, "first_stage" if is_first else "reranker",
                                 depth if depth is not None else first_depth,
                                 qid, metric, value))
    frame = pd.DataFrame(rows, columns=["system", "stage", "depth", "query_id", "metric", "value"])
    return frame.sort_values(["stage", "system", "depth", "metric", "query_id"],
                             kind="stable").reset_index(drop=True)


def write_results(result: ExperimentResult) -> Path:
    """Write results.json and per_query.csv (atomically, so a crash never leaves half a file).
    The runner calls it after the first stage and after each reranker: ``status`` says
    whether every reranker is in."""
    out = result.reports_dir
    atomic_write_text(out / "per_query.csv", per_query_frame(result).to_csv(index=False))
    atomic_write_text(out / "results.json", results_json(results_model(result)))
    return out / "results.json"


def summary_table(result: ExperimentResult) -> str:
    """The table the CLI prints: one row per system and depth, one column per metric."""
    metric_names = [m.name for m in result.config.resolved_metrics]
    rows = [[result.first_stage.name, str(first_stage_entry(result.first_stage).depth)]
            + [f"{result.first_stage.evaluations[None].means[m]:.4f}" for m in metric_names]]
    for stage in result.rerankers:
        for depth, ev in stage.evaluations.items():
            rows.append([stage.name, str(depth)] + [f"{ev.means[m]:.4f}" for m in metric_names])
    return text_table(["system", "depth"] + metric_names, rows)
