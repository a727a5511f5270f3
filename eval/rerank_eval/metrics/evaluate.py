"""Evaluate rankings against qrels with trec_eval's conventions, using ranx.

Conventions (each is written into the report):
- The evaluated queries are those in the qrels (after sampling). A query with no results
  scores 0 on every metric (trec_eval ``-c``); their number is reported.
- Results for queries absent from the qrels are ignored (trec_eval does the same).
- nDCG uses linear graded gains (gain = grade, trec_eval ``ndcg_cut``) over all positive
  judgments; binary metrics count a document relevant when grade >= the relevance threshold
  (trec_eval ``-l``).
- Rankings are passed to ranx as strictly decreasing rank-derived scores, so ranx sees exactly
  the order the harness decided (trec_eval's tie rule), never its own tie order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from ranx import Qrels as RanxQrels
from ranx import Run as RanxRun
from ranx import evaluate as ranx_evaluate

from rerank_eval.metrics.jit import quiet_jit
from rerank_eval.metrics.specs import MetricSpec

CONVENTIONS = {
    "evaluated_queries": "queries in the qrels; queries without results score 0 (trec_eval -c)",
    "unjudged_run_queries": "ignored",
    "ndcg_gain": "linear: gain = relevance grade (trec_eval ndcg_cut), all positive grades",
    "binary_relevance": "grade >= relevance_threshold (trec_eval -l)",
    "unjudged_documents": "non-relevant",
    "mrr_at_k": "reciprocal rank of the first relevant document within the top k, else 0",
    "map_at_k": "sum of precision at relevant ranks <= k divided by all relevant (map_cut)",
}


@dataclass
class Evaluation:
    """Per-query and mean values of each metric for one ranking."""

    per_query: dict[str, dict[str, float]]  # metric -> query id -> value
    means: dict[str, float]
    queries: int
    queries_without_results: int
    missing_query_ids: list[str] = field(default_factory=list)


def evaluate_ranking(
    ranking: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Sequence[MetricSpec],
    relevance_threshold: int = 1,
) -> Evaluation:
    """Score ``ranking`` (query id -> ordered doc ids) against ``qrels``."""
    evaluated = sorted(qrels)
    with_results = [q for q in evaluated if ranking.get(q)]
    missing = [q for q in evaluated if not ranking.get(q)]

    per_query: dict[str, dict[str, float]] = {m.name: {} for m in metrics}
    if with_results:
        run_dict = {}
        for q in with_results:
            docs = ranking[q]
            n = len(docs)
            run_dict[q] = {d: float(n - i) for i, d in enumerate(docs)}
        qrels_dict = {q: {d: int(g) for d, g in qrels[q].items()} for q in with_results}
        # ranx needs at least one judgment row per query; a query judged with only zeros keeps
        # its zero rows, which ranx treats as non-relevant (every metric is then 0).
        ranx_qrels = RanxQrels(qrels_dict)
        ranx_run = RanxRun(run_dict)
        names = {m.name: m.ranx_name(relevance_threshold) for m in metrics}
        requested = list(dict.fromkeys(names.values()))
        if len(requested) == 1:
            # ranx returns a bare array (and mislabels it) for a single metric: ask for two.
            requested.append("precision@1" if requested[0] != "precision@1" else "recall@1")
        with quiet_jit():
            values = ranx_evaluate(ranx_qrels, ranx_run, requested, return_mean=False,
                                   save_results_in_run=False)
        order = list(ranx_run.get_query_ids())
        for m in metrics:
            arr = np.asarray(values[names[m.name]], dtype=float)
            per_query[m.name] = {q: float(v) for q, v in zip(order, arr)}
    for m in metrics:
        for q in missing:
            per_query[m.name][q] = 0.0
    means = {
        m.name: float(np.mean(list(per_query[m.name].values()))) if evaluated else 0.0
        for m in metrics
    }
    return Evaluation(
        per_query=per_query,
        means=means,
        queries=len(evaluated),
        queries_without_results=len(missing),
        missing_query_ids=missing,
    )
