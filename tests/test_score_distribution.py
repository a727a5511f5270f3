"""Score distributions split judged-relevant from other shortlist pairs, on shared bins."""

from __future__ import annotations

import pytest
from rerank_eval.analysis.score_distribution import score_distribution


def test_histogram_counts_every_pair_once_by_class():
    scores = {"q1": {"a": 2.0, "b": -1.0, "c": 0.5}, "q2": {"a": 1.0, "d": 3.0}}
    qrels = {"q1": {"a": 2, "b": 1}, "q2": {"d": 2}}
    dist = score_distribution(scores, qrels, threshold=2, bins=4)
    assert dist["count"] == 5 and dist["relevant_count"] == 2  # q1/a and q2/d
    assert sum(dist["histogram"]["relevant"]) == 2 and sum(dist["histogram"]["other"]) == 3
    assert dist["min"] == -1.0 and dist["max"] == 3.0
    assert dist["quantiles"]["p50"] == pytest.approx(1.0)
    assert len(dist["histogram"]["edges"]) == 5


def test_no_scores_gives_an_empty_distribution():
    assert score_distribution({}, {}, threshold=1) == {"count": 0}
