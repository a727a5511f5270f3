"""Latency is measured per query as one scoring call, on a seeded sample, without counting."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from rerank_eval.config import LatencyConfig
from rerank_eval.datasets import Dataset
from rerank_eval.rerankers.base import Reranker
from rerank_eval.runs import Run
from rerank_eval.scoring.latency import (
    latency_summary,
    measure_first_stage_latency,
    measure_rerank_latency,
)


class SleepyReranker(Reranker):
    """Takes 2 ms per pair and records every call it gets."""

    kind = "sleepy"

    def __init__(self):
        super().__init__("sleepy", {}, base_dir=Path("."))
        self.calls: list[int] = []

    def score(self, pairs):
        self.calls.append(len(pairs))
        time.sleep(0.002 * len(pairs))
        self.stats.pairs_scored += len(pairs)
        return np.zeros(len(pairs))


def _data(n_queries: int = 12, n_docs: int = 40) -> tuple[Dataset, Run]:
    corpus = {f"d{i}": f"passage {i}" for i in range(n_docs)}
    queries = {f"q{i}": f"query {i}" for i in range(n_queries)}
    ranking = {q: list(corpus) for q in queries}
    ranking["q0"] = ranking["q0"][:5]  # a short list: only 5 candidates
    run = Run("fs", ranking, {q: {d: 1.0 for d in docs} for q, docs in ranking.items()})
    return Dataset("toy", corpus, queries, {q: {"d0": 1} for q in queries}), run


def test_summary_matches_numpy_percentiles():
    values = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0]
    s = latency_summary(values)
    assert s["p50"] == pytest.approx(np.percentile(values, 50))
    assert s["p95"] == pytest.approx(np.percentile(values, 95))
    assert s["p99"] == pytest.approx(np.percentile(values, 99))
    assert s["mean"] == pytest.approx(np.mean(values))
    assert s["queries"] == 6
    assert latency_summary([])["queries"] == 0 and latency_summary([])["p50"] is None


def test_one_call_per_query_and_depth_plus_warmup_and_nothing_counted():
    dataset, run = _data()
    rr = SleepyReranker()
    rr.stats.pairs_scored = 123
    out = measure_rerank_latency(rr, dataset, run, [5, 20, 40],
                                 LatencyConfig(queries=6, warmup=2, seed=0))
    assert set(out) == {"5", "20", "40"}
    assert all(v["queries"] == 6 for v in out.values())
    # every (query, depth) is one call; warm-up included; one probe repeated for the spread
    assert len(rr.calls) == (6 + 2) * 3 + LatencyConfig().repeats
    assert rr.stats.pairs_scored == 123  # latency probes are not scored pairs
    assert out["5"]["pairs_per_query"] == 5
    assert out["5"]["p50"] < out["20"]["p50"] < out["40"]["p50"]


def test_backends_that_prepare_per_shape_see_every_probe_before_timing():
    """CUDA graphs are captured on a shape's second call: every probe is scored that many
    times untimed first, so no capture lands in a timed call."""
    dataset, run = _data()
    rr = SleepyReranker()
    rr.latency_warmup_rounds = lambda: 2
    out = measure_rerank_latency(rr, dataset, run, [5, 20],
                                 LatencyConfig(queries=4, warmup=1, seed=0))
    assert len(rr.calls) == (1 + 2 * 4 + 4) * 2 + LatencyConfig().repeats
    assert all(v["queries"] == 4 for v in out.values())


def test_sample_is_seeded_and_capped_by_the_queries_available():
    dataset, run = _data(n_queries=4)
    cfg = LatencyConfig(queries=50, warmup=0, seed=3)
    a, b = SleepyReranker(), SleepyReranker()
    out = measure_rerank_latency(a, dataset, run, [40], cfg)
    measure_rerank_latency(b, dataset, run, [40], cfg)
    assert out["40"]["queries"] == 4
    assert a.calls == b.calls


def test_short_lists_are_scored_as_they_are():
    dataset, run = _data(n_queries=1)
    out = measure_rerank_latency(SleepyReranker(), dataset, run, [10],
                                 LatencyConfig(queries=1, warmup=0))
    assert out["10"]["pairs_per_query"] == 5


def test_zero_queries_turns_latency_off():
    dataset, run = _data()
    rr = SleepyReranker()
    assert measure_rerank_latency(rr, dataset, run, [5], LatencyConfig(queries=0)) == {}
    assert rr.calls == []
    assert measure_first_stage_latency(lambda q: q, dataset, LatencyConfig(queries=0)) is None


def test_first_stage_latency_times_one_query_per_call():
    dataset, _ = _data()
    seen = []
    out = measure_first_stage_latency(seen.append, dataset, LatencyConfig(queries=5, warmup=1))
    assert out["queries"] == 5 and len(seen) == 6
    assert measure_first_stage_latency(None, dataset, LatencyConfig()) is None


def test_billed_backends_get_no_latency_probes():
    from rerank_eval.rerankers import RERANKERS
    from rerank_eval.rerankers.hosted.base import HostedReranker
    from rerank_eval.rerankers.listwise import ListwiseReranker

    for kind, cls in RERANKERS.items():
        # Hosted APIs are billed per call; a listwise probe would be a (billed) generation.
        billed = issubclass(cls, (HostedReranker, ListwiseReranker))
        assert cls.latency_probes is not billed, kind
