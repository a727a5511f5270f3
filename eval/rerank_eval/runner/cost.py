"""The per-reranker cost step of the pipeline: throughput, latency, score distribution,
output cut, quality against the first stage alone and the recommendation, as plain data for
results.json."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rerank_eval.analysis.output_cut import output_cut_quality
from rerank_eval.analysis.recommend import Option, recommend
from rerank_eval.analysis.score_distribution import score_distribution
from rerank_eval.compare import stats
from rerank_eval.config import ExperimentConfig
from rerank_eval.datasets import Dataset
from rerank_eval.metrics import Evaluation
from rerank_eval.rerankers.base import Reranker, ScoringStats
from rerank_eval.results import Sanity
from rerank_eval.runs import Run
from rerank_eval.scoring.latency import (
    LatencyPlan,
    latency_plan,
    throughput,
)
from rerank_eval.scoring.windows import WindowedShortlist

logger = logging.getLogger(__name__)

VS_FIRST_STAGE_TEST = "t-test"  # compare's default paired test


@dataclass
class ScoringPass:
    """One scoring pass over the shortlist (the reranker's own ``max_length``, or one of its
    ``max_lengths``) and what it gave."""

    max_length: int | None
    model_scores: dict[str, dict[str, float]]
    evaluations: dict[int, Evaluation]
    scoring_s: float
    description: dict[str, Any]
    stats: ScoringStats
    split: WindowedShortlist | None = None  # with long_docs windows
    retry_wait_s: float = 0.0  # wall time spent waiting out failures (not in throughput)
    cost: dict[str, Any] = field(default_factory=dict)  # from measure_pass


def measure_pass(reranker: Reranker, scoring: ScoringPass, dataset: Dataset,
                 config: ExperimentConfig, shortlist: Run, measure_latency: LatencyFn
                 ) -> dict[str, Any]:
    """Throughput of the pass and per-query latency of ``reranker`` (the pass's model, still
    loaded): the results.json keys ``throughput``, ``latency_ms``, ``latency_setup``, ..."""
    import torch

    queries = sum(1 for docs in shortlist.ranking.values() if docs)
    params, description = reranker.params, scoring.description
    settings = {"batch_size": description.get("batch_size", getattr(params, "batch_size", None)),
                "dtype": description.get("dtype", getattr(params, "dtype", "model default")),
                "device": description.get("device", getattr(params, "device", None))}
    bulk = throughput(scoring.stats.pairs_scored, queries, scoring.scoring_s, settings,
                      torch.get_num_threads(), retry_wait_s=scoring.retry_wait_s)
    cached = scoring.stats.pairs_from_cache
    if cached:
        # Cache hits cost no model time: a rate over a partly cached pass means nothing.
        bulk.update(pairs_per_s=None, queries_per_s=None, pairs_from_cache=cached,
                    note=f"{cached} pairs came from the score cache; throughput is measured "
                         "only on a pass that runs the model for every pair (--no-cache)")
    info: dict[str, Any] = {"throughput": bulk}
    latency: dict[str, Any] = {}
    conditions: dict[str, Any] = {}
    windows = scoring.split.window_texts() if scoring.split is not None else None
    plan = (latency_plan(dataset, shortlist, config.resolved_depths, config.latency, windows)
            if reranker.latency_probes else None)
    if plan is not None:
        # One measurement per hardware setup, where the scoring runs (this process, or one
        # Ray worker per hardware id); the first is the reranker's latency.
        measured = measure_latency(reranker, plan)
        latency = measured[0]["latency_ms"]
        conditions = measured[0].get("conditions") or {}
        info["latency_where"] = measured[0]["where"]
        if measured[0].get("hardware"):
            info["latency_hardware"] = measured[0]["hardware"]
        if len(measured) > 1:
            info["latency_ms_by_hardware"] = {m["hardware"]["id"]: m["latency_ms"]
                                              for m in measured}
    info["latency_ms"] = latency
    info["latency_setup"] = {
        **config.latency.model_dump(exclude_none=True), "measured": bool(latency),
        "score_cache": "bypassed: every latency call runs the model",
        **({} if reranker.latency_probes else {
            "skipped": "billed backend: no probes (see request_latency_summary_ms)"}),
        **{k: v for k, v in conditions.items() if v is not None},
    }
    return info


def vs_first_stage(evaluations: Mapping[int, Evaluation], first_stage: Evaluation,
                   metric: str) -> dict[str, dict[str, Any]]:
    """Per depth: ``metric`` reranked minus the first stage alone, over the queries both
    evaluated, with the paired test's p-value (the test ``compare`` uses by default)."""
    fs = first_stage.per_query.get(metric, {})
    out = {}
    for depth, ev in sorted(evaluations.items()):
        rr = ev.per_query.get(metric, {})
        common = sorted(set(fs) & set(rr))
        if not common:
            continue
        a = [fs[q] for q in common]
        b = [rr[q] for q in common]
        out[str(depth)] = {"metric": metric, "difference": (sum(b) - sum(a)) / len(common),
                           "p_value": stats.paired_p_value(VS_FIRST_STAGE_TEST, a, b),
                           "test": VS_FIRST_STAGE_TEST, "queries": len(common)}
    return out


def benchmark_reranker(
    reranker: Reranker,
    dataset: Dataset,
    config: ExperimentConfig,
    *,
    first_stage: Run,
    first_stage_eval: Evaluation,
    main: ScoringPass,
    others: list[ScoringPass],
    sanity: Sanity | None,
    per_depth: Mapping[int, Mapping[str, Mapping[str, float]]] | None = None,
) -> dict[str, Any]:
    """Everything results.json records about a reranker's cost, its quality against the
    first stage and its recommendation (``main``: the pass at its ``max_length``, already
    measured; ``others``: one per other ``max_lengths`` value; ``per_depth``: each depth's
    own scores (listwise), else ``main``'s serve every depth)."""
    info: dict[str, Any] = dict(main.cost)
    info["score_distribution"] = score_distribution(main.model_scores, dataset.qrels,
                                                    config.relevance_threshold)
    rec_cfg = config.recommendation
    metric = rec_cfg.metric
    info["output_cut"] = output_cut_quality(
        first_stage.ranking, main.model_scores, config.resolved_depths, dataset.qrels,
        rec_cfg.output_measures, rec_cfg.output_k, config.relevance_threshold,
        per_depth=per_depth)
    info["vs_first_stage"] = vs_first_stage(main.evaluations, first_stage_eval, metric)
    if main.split is not None:
        info["documents_scored"] = main.split.documents
    passes = [main] + others
    joint = getattr(reranker.params, "max_lengths", None) is not None
    if joint:
        info["by_max_length"] = {str(p.max_length): _length_entry(p, first_stage_eval, metric)
                                 for p in sorted(passes, key=lambda p: p.max_length or 0)}
    quality: dict[Option, float] = {}
    latency: dict[Option, Mapping[str, Any]] = {}
    p_values: dict[Option, float] = {}
    for p in passes:
        vs = info["vs_first_stage"] if p is main else vs_first_stage(p.evaluations,
                                                                     first_stage_eval, metric)
        for d in config.resolved_depths:
            option = Option(d, p.max_length if joint else None)
            quality[option] = p.evaluations[d].means[metric]
            if str(d) in p.cost.get("latency_ms", {}):
                latency[option] = p.cost["latency_ms"][str(d)]
            if str(d) in vs:
                p_values[option] = vs[str(d)]["p_value"]
    measured = bool(main.cost.get("latency_ms"))
    withheld = None
    if sanity is not None and sanity.failed:
        withheld = (f"{reranker.name} fails its sanity probes ({sanity.inverted} of "
                    f"{sanity.probes} obvious pairs ranked the wrong way round)")
    rec = recommend(quality, latency, metric=metric, tolerance=rec_cfg.tolerance,
                    latency_budget_ms=rec_cfg.latency_budget_ms,
                    latency_stat=rec_cfg.latency_stat,
                    first_stage_quality=first_stage_eval.means[metric], p_values=p_values,
                    test=VS_FIRST_STAGE_TEST, withheld=withheld, latency_measured=measured)
    info["recommended_depth"] = rec.depth
    if joint:
        info["recommended_max_length"] = rec.max_length
    info["recommendation"] = rec.as_dict()
    for line in rec.reasoning:
        logger.info(f"{reranker.name} recommendation: {line}")
    return info


def _length_entry(p: ScoringPass, first_stage_eval: Evaluation, metric: str) -> dict[str, Any]:
    return {"metrics": {str(d): ev.means for d, ev in sorted(p.evaluations.items())},
            "pairs_scored": p.stats.pairs_scored, "pairs_from_cache": p.stats.pairs_from_cache,
            "pairs_truncated": p.stats.pairs_truncated,
            "documents_scored": None if p.split is None else p.split.documents,
            "vs_first_stage": vs_first_stage(p.evaluations, first_stage_eval, metric),
            "throughput": p.cost.get("throughput"), "latency_ms": p.cost.get("latency_ms", {})}


LatencyFn = Callable[[Reranker, LatencyPlan], list[dict[str, Any]]]
