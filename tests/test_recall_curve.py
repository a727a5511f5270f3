"""First-stage recall curve: recall@k at a grid of cutoffs, the reranking ceiling."""

from __future__ import annotations

import pytest
from rerank_eval.metrics import evaluate_ranking, parse_metrics
from rerank_eval.metrics.recall_curve import recall_curve, recall_grid


def test_grid_covers_one_to_depth_with_the_reranking_depths() -> None:
    assert recall_grid(100) == [1, 2, 3, 5, 10, 20, 30, 50, 100]
    assert recall_grid(1000)[-4:] == [200, 300, 500, 1000]
    assert recall_grid(40, extra=[25, 60]) == [1, 2, 3, 5, 10, 20, 25, 30, 40]
    assert recall_grid(1) == [1]


def test_curve_values_are_recall_at_k_at_the_threshold() -> None:
    ranking = {"q1": ["a", "b", "c", "d", "e"], "q2": ["x", "y", "z"]}
    qrels = {"q1": {"b": 2, "e": 1, "zz": 2}, "q2": {"x": 1}}
    curve = recall_curve(ranking, qrels, depth=5, relevance_threshold=2)
    # q1 has two documents of grade >= 2 (b at rank 2, zz never retrieved); q2 has none.
    assert curve == pytest.approx({1: 0.0, 2: 0.25, 3: 0.25, 5: 0.25})
    direct = evaluate_ranking(ranking, qrels, parse_metrics(["recall@2", "recall@5"]),
                              2).means["recall@2"]
    assert curve[2] == pytest.approx(direct)


def test_curve_never_decreases() -> None:
    ranking = {f"q{i}": [f"d{j}" for j in range(30)] for i in range(5)}
    qrels = {f"q{i}": {f"d{3 * i + 4}": 1, f"d{20 + i}": 1} for i in range(5)}
    values = list(recall_curve(ranking, qrels, depth=30).values())
    assert values == sorted(values) and values[-1] == 1.0


def test_one_point_curve() -> None:
    assert recall_curve({"q": ["a", "b"]}, {"q": {"a": 1, "c": 1}}, depth=1) == {1: 0.5}
