"""First-stage recall at every cutoff: the ceiling any reranker of the top-k works under.

Reranking the top-k can only reorder those k documents, so a reranked run's recall@k never
exceeds the first stage's recall@k; the curve shows that ceiling for each depth one might choose.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from rerank_eval.metrics.evaluate import evaluate_ranking
from rerank_eval.metrics.specs import MetricSpec

BASE_GRID = (1, 2, 3, 5)


def recall_grid(depth: int, extra: Iterable[int] = ()) -> list[int]:
    """1, 2, 3, 5, 10, 20, 30, 50, 100, 200, ... up to ``depth``, plus ``depth`` and ``extra``
    (the reranking depths) where they are <= ``depth``."""
    grid: set[int] = set()
    scale = 1
    while scale <= depth:
        grid.update(k * scale for k in BASE_GRID if k * scale <= depth)
        scale *= 10
    grid.add(depth)
    grid.update(k for k in extra if 1 <= k <= depth)
    return sorted(grid)


def recall_curve(
    ranking: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    depth: int,
    relevance_threshold: int = 1,
    extra: Iterable[int] = (),
) -> dict[int, float]:
    """Mean recall@k (trec_eval semantics, binary at the threshold) for each k of the grid."""
    grid = recall_grid(depth, extra)
    specs = [MetricSpec("recall", k) for k in grid]
    # A second measure alongside a one-point grid: ranx mislabels a lone metric's result.
    asked = specs if len(specs) > 1 else specs + [MetricSpec("p", 1)]
    means = evaluate_ranking(ranking, qrels, asked, relevance_threshold).means
    return {k: means[spec.name] for k, spec in zip(grid, specs)}
