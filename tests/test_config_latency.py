"""The latency and recommendation sections of the config: defaults and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from rerank_eval.config import parse_config
from rerank_eval.errors import InputError

BASE = {"name": "x", "dataset": {"bundled": "quickstart"}, "first_stage": {"bm25": {},
                                                                           "depth": 20}}


def _parse(**extra):
    return parse_config({**BASE, **extra}, base_dir=Path("."))


def test_defaults():
    cfg = _parse()
    assert (cfg.latency.queries, cfg.latency.warmup, cfg.latency.seed) == (50, 3, 0)
    rec = cfg.recommendation
    assert rec.metric == "ndcg@10" and rec.tolerance == 0.005
    assert rec.latency_budget_ms is None and rec.latency_stat == "p95"
    assert rec.output_k == [3, 5, 10] and rec.output_measures == ["ndcg", "recall"]
    assert cfg.resolved()["latency"] == {"queries": 50, "warmup": 3, "seed": 0, "depths": None,
                                         "repeats": 5, "max_spread": 0.5}


def test_latency_off_and_custom_recommendation():
    cfg = _parse(latency={"queries": 0}, metrics=["ndcg@10", "mrr@10"],
                 recommendation={"metric": "mrr@10", "tolerance": 0.01,
                                 "latency_budget_ms": 50, "output_k": [5, 1],
                                 "output_measures": ["ndcg", "p"]})
    assert cfg.latency.queries == 0
    assert cfg.recommendation.metric == "mrr@10"
    assert cfg.recommendation.latency_budget_ms == 50.0
    assert cfg.recommendation.output_k == [1, 5]


def test_default_metric_falls_back_to_the_first_configured():
    assert _parse(metrics=["map@20", "recall@20"]).recommendation.metric == "map@20"


@pytest.mark.parametrize("extra, message", [
    ({"latency": {"queries": -1}}, "latency.queries"),
    ({"latency": {"sample": 3}}, "latency: unknown key 'sample'"),
    ({"recommendation": {"metric": "ndcg@5"}}, "recommendation.metric: ndcg@5 is not in"),
    ({"recommendation": {"tolerance": "a"}}, "recommendation.tolerance"),
    ({"recommendation": {"latency_budget_ms": -1}}, "recommendation.latency_budget_ms"),
    ({"recommendation": {"latency_stat": "p90"}}, "recommendation.latency_stat"),
    ({"recommendation": {"output_k": []}}, "recommendation.output_k"),
    ({"recommendation": {"output_measures": ["bleu"]}}, "recommendation.output_measures"),
])
def test_bad_values_name_the_field(extra, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        _parse(**extra)
