"""Acceptance on real data (slow: pytest -m slow tests/test_depth_acceptance.py).

SciFact test, BM25 top-100, the SciFact cross-encoder at depths 10/20/50/100: latency grows
with depth, the recommendation reaches the report, and each shortlist pair is scored once.
"""

from __future__ import annotations

import json

import pytest
from rerank_eval.config import parse_config
from rerank_eval.runner import run_experiment


@pytest.mark.slow
def test_scifact_depth_curve_latency_and_report(scifact_dir, scifact_ce, tmp_path):
    raw = {
        "name": "scifact-depth",
        "dataset": {"beir": str(scifact_dir), "split": "test", "sample": {"queries": 12}},
        "first_stage": {"bm25": {}, "depth": 100},
        "rerankers": [{"name": "scifact-ce", "kind": "cross-encoder", "model": str(scifact_ce),
                       "max_length": 256}],
        "depths": [10, 20, 50, 100],
        "metrics": ["ndcg@10", "recall@100"],
        "latency": {"queries": 6, "warmup": 1},
    }
    run_experiment(parse_config(raw, base_dir=tmp_path), out_dir=tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    rr = data["rerankers"][0]
    shortlist = len((tmp_path / "runs" / "first_stage.trec").read_text().splitlines())
    assert rr["pairs_scored"] == shortlist  # once each, latency probes not counted
    p50 = [rr["latency_ms"][d]["p50"] for d in ("10", "20", "50", "100")]
    assert p50[0] < p50[2] < p50[3]
    assert rr["recommended_depth"] in (10, 20, 50, 100)
    html = (tmp_path / "report.html").read_text()
    assert "recommended depth" in html and html.count("data:image/png;base64,") == 4
