"""Quality at the output cut: rerank d candidates, keep the top k (e.g. 3, 5, 10).

The field's rule of thumb is "rerank deep, keep few"; this shows what keeping k costs at each
rerank depth, computed on the same reranked ranking as the depth curve.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rerank_eval.metrics import evaluate_ranking
from rerank_eval.metrics.specs import MetricSpec
from rerank_eval.runs import rerank_at_depth


def output_cut_quality(
    first_stage: Mapping[str, Sequence[str]],
    model_scores: Mapping[str, Mapping[str, float]],
    depths: Sequence[int],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Sequence[str],
    ks: Sequence[int],
    threshold: int,
    per_depth: Mapping[int, Mapping[str, Mapping[str, float]]] | None = None,
) -> dict[str, dict[str, float]]:
    """``{depth: {measure@k: mean}}`` for every depth and output cut k (``per_depth``: each
    depth's own scores, as a listwise reranker has them)."""
    specs = [MetricSpec(m, k) for k in ks for m in measures]
    out: dict[str, dict[str, float]] = {}
    for depth in depths:
        scores = model_scores if per_depth is None else per_depth[depth]
        run = rerank_at_depth(first_stage, scores, depth, f"cut@{depth}")
        out[str(depth)] = evaluate_ranking(run.ranking, qrels, specs, threshold).means
    return out
