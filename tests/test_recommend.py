"""The recommended depth: smallest near-best depth, optionally within a latency budget."""

from __future__ import annotations

from rerank_eval.analysis.recommend import recommend_depth
from rerank_eval.reports.plots import pareto_front

QUALITY = {10: 0.600, 20: 0.652, 50: 0.655, 100: 0.654}
LATENCY = {"10": {"p95": 20.0}, "20": {"p95": 40.0}, "50": {"p95": 100.0},
           "100": {"p95": 200.0}}


def test_smallest_depth_within_tolerance_of_the_best():
    rec = recommend_depth(QUALITY, LATENCY, metric="ndcg@10", tolerance=0.005)
    assert rec.depth == 20 and rec.best_depth == 50
    assert rec.quality == 0.652 and rec.latency_ms == 40.0
    assert any("within 0.005" in line for line in rec.reasoning)


def test_zero_tolerance_takes_the_best_depth():
    assert recommend_depth(QUALITY, LATENCY, metric="m", tolerance=0.0).depth == 50


def test_budget_excludes_slow_depths():
    rec = recommend_depth(QUALITY, LATENCY, metric="m", tolerance=0.0, latency_budget_ms=50)
    assert rec.depth == 20  # best (50) is too slow; 20 is the best that fits
    assert "no near-best depth fits" in " ".join(rec.reasoning)


def test_no_depth_fits_the_budget():
    rec = recommend_depth(QUALITY, LATENCY, metric="m", tolerance=0.005, latency_budget_ms=5)
    assert rec.depth is None and rec.quality is None


def test_budget_without_latency_is_reported_not_applied():
    rec = recommend_depth(QUALITY, None, metric="m", tolerance=0.005, latency_budget_ms=5)
    assert rec.depth == 20
    assert "not applied" in " ".join(rec.reasoning)


def test_pareto_front_keeps_only_undominated_points():
    pts = [(10, 0.5), (20, 0.6), (15, 0.4), (40, 0.6), (80, 0.7)]
    assert pareto_front(pts) == [(10, 0.5), (20, 0.6), (80, 0.7)]
