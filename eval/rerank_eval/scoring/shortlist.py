"""Score a first-stage shortlist with a reranker, and derive the reranked run at each depth.

The shortlist is scored once at the largest depth; every smaller depth reuses those scores,
so a whole depth curve costs one scoring pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from rerank_eval.datasets import Dataset
from rerank_eval.rerankers.base import Reranker
from rerank_eval.runs import Run, order_by_score

ProgressFn = Callable[[int, int], None]


def score_shortlist(
    reranker: Reranker,
    dataset: Dataset,
    shortlist: Run,
    *,
    queries_per_chunk: int = 32,
    progress: ProgressFn | None = None,
) -> dict[str, dict[str, float]]:
    """Model scores for every (query, candidate) of ``shortlist``, query by query in chunks."""
    query_ids = sorted(q for q, docs in shortlist.ranking.items() if docs)
    total = sum(len(shortlist.ranking[q]) for q in query_ids)
    done = 0
    scores: dict[str, dict[str, float]] = {q: {} for q in shortlist.ranking}
    for start in range(0, len(query_ids), queries_per_chunk):
        chunk = query_ids[start : start + queries_per_chunk]
        keys = [(q, d) for q in chunk for d in shortlist.ranking[q]]
        pairs = [(dataset.queries[q], dataset.corpus[d]) for q, d in keys]
        values = reranker.score(pairs)
        for (q, d), v in zip(keys, values):
            scores[q][d] = float(v)
        done += len(keys)
        if progress is not None:
            progress(done, total)
    return scores


def rerank_at_depth(
    first_stage: Mapping[str, Sequence[str]],
    model_scores: Mapping[str, Mapping[str, float]],
    depth: int,
    name: str,
) -> Run:
    """Top-``depth`` reordered by the model (ties by doc id descending); below it, the first
    stage's order continues, so metrics cut deeper than ``depth`` still see the shortlist."""
    ranking: dict[str, list[str]] = {}
    scores: dict[str, dict[str, float]] = {}
    for q, docs in first_stage.items():
        head = docs[:depth]
        q_scores = model_scores.get(q, {})
        head_scores = {d: q_scores[d] for d in head}
        ranking[q] = order_by_score(head_scores) + list(docs[depth:])
        scores[q] = head_scores
    return Run(name=name, ranking=ranking, scores=scores)
