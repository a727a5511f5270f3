"""The per-reranker cost step of the pipeline: throughput, latency, score distribution,
output cut and the depth recommendation, as plain data for results.json."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from rerank_eval.analysis.output_cut import output_cut_quality
from rerank_eval.analysis.recommend import Recommendation, recommend_depth
from rerank_eval.analysis.score_distribution import score_distribution
from rerank_eval.config import ExperimentConfig
from rerank_eval.datasets import Dataset
from rerank_eval.metrics import Evaluation
from rerank_eval.rerankers.base import Reranker
from rerank_eval.runs import Run
from rerank_eval.scoring.latency import (
    LatencyPlan,
    latency_plan,
    throughput,
)

logger = logging.getLogger(__name__)


def benchmark_reranker(
    reranker: Reranker,
    dataset: Dataset,
    config: ExperimentConfig,
    *,
    first_stage: Run,
    shortlist: Run,
    model_scores: Mapping[str, Mapping[str, float]],
    evaluations: Mapping[int | None, Evaluation],
    scoring_s: float,
    retry_wait_s: float = 0.0,
    description: dict[str, Any],
    measure_latency: LatencyFn,
    per_depth: Mapping[int, Mapping[str, Mapping[str, float]]] | None = None,
) -> dict[str, Any]:
    """Everything results.json records about a reranker's cost and its recommended depth.
    ``measure_latency`` (the executor's) times the latency plan where scoring runs;
    ``per_depth``: each depth's own scores (listwise), else ``model_scores`` serve all;
    ``retry_wait_s`` (time spent waiting out failures) is left out of the throughput."""
    info: dict[str, Any] = {
        "throughput": _throughput(reranker, shortlist, scoring_s, description, retry_wait_s)}
    latency, where = _latency(reranker, dataset, shortlist, config, measure_latency)
    info.update(where)
    info["latency_ms"] = latency
    info["latency_setup"] = {
        **vars(config.latency), "measured": bool(latency),
        "score_cache": "bypassed: every latency call runs the model",
        **({} if reranker.latency_probes else {
            "skipped": "billed backend: no probes (see request_latency_summary_ms)"}),
    }
    info["score_distribution"] = score_distribution(model_scores, dataset.qrels,
                                                    config.relevance_threshold)
    rec_cfg = config.recommendation
    info["output_cut"] = output_cut_quality(
        first_stage.ranking, model_scores, config.resolved_depths, dataset.qrels,
        rec_cfg.output_measures, rec_cfg.output_k, config.relevance_threshold,
        per_depth=per_depth)
    rec = _recommend(reranker.name, config, evaluations, latency)
    info["recommended_depth"] = rec.depth
    info["recommendation"] = rec.as_dict()
    return info


def _throughput(reranker: Reranker, shortlist: Run, scoring_s: float,
                description: dict[str, Any], retry_wait_s: float = 0.0) -> dict[str, Any]:
    """The bulk pass's throughput with the settings that produced it (no rate when some pairs
    came from the score cache)."""
    import torch

    queries = sum(1 for docs in shortlist.ranking.values() if docs)
    params = reranker.params
    settings = {"batch_size": description.get("batch_size", getattr(params, "batch_size", None)),
                "dtype": description.get("dtype", getattr(params, "dtype", "model default")),
                "device": description.get("device", getattr(params, "device", None))}
    bulk = throughput(reranker.stats.pairs_scored, queries, scoring_s, settings,
                      torch.get_num_threads(), retry_wait_s=retry_wait_s)
    cached = getattr(reranker.stats, "pairs_from_cache", 0)
    if cached:
        # Cache hits cost no model time: a rate over a partly cached pass means nothing.
        bulk.update(pairs_per_s=None, queries_per_s=None, pairs_from_cache=cached,
                    note=f"{cached} pairs came from the score cache; throughput is measured "
                         "only on a pass that runs the model for every pair (--no-cache)")
    return bulk


def _latency(reranker: Reranker, dataset: Dataset, shortlist: Run, config: ExperimentConfig,
             measure_latency: LatencyFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the reranker's per-query latency by depth, where and on what it was measured); both
    empty when the reranker takes no latency probes or latency is off."""
    latency: dict[str, Any] = {}
    where: dict[str, Any] = {}
    plan = (latency_plan(dataset, shortlist, config.resolved_depths, config.latency)
            if reranker.latency_probes else None)
    if plan is not None:
        # One measurement per hardware setup, where the scoring runs (this process, or one
        # Ray worker per hardware id); the first is the reranker's latency.
        measured = measure_latency(reranker, plan)
        latency = measured[0]["latency_ms"]
        where["latency_where"] = measured[0]["where"]
        if measured[0].get("hardware"):
            where["latency_hardware"] = measured[0]["hardware"]
        if len(measured) > 1:
            where["latency_ms_by_hardware"] = {m["hardware"]["id"]: m["latency_ms"]
                                               for m in measured}
    return latency, where


def _recommend(name: str, config: ExperimentConfig, evaluations: Mapping[int | None, Evaluation],
               latency: dict[str, Any]) -> Recommendation:
    """The recommended depth from each depth's quality (and latency, when measured); its
    reasoning is logged."""
    rec_cfg = config.recommendation
    quality = {d: evaluations[d].means[rec_cfg.metric] for d in config.resolved_depths}
    rec = recommend_depth(quality, latency or None, metric=rec_cfg.metric,
                          tolerance=rec_cfg.tolerance,
                          latency_budget_ms=rec_cfg.latency_budget_ms,
                          latency_stat=rec_cfg.latency_stat)
    for line in rec.reasoning:
        logger.info(f"{name} recommendation: {line}")
    return rec


LatencyFn = Callable[[Reranker, LatencyPlan], list[dict[str, Any]]]
