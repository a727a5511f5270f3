"""End to end: a hybrid (BM25 + dense) shortlist reranked, with the recall curve and latency."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from rerank_eval.config import parse_config
from rerank_eval.runner import run_experiment


def write_beir(folder: Path) -> Path:
    folder.mkdir()
    docs = {f"p{i:02d}": f"Filler passage {i} about committee budgets and item {i}."
            for i in range(16)}
    docs.update({"cat": "Cats purr and hunt mice.", "rust": "Iron rusts in water and oxygen.",
                 "tide": "The moon's gravity causes ocean tides.",
                 "lava": "Volcanoes erupt lava from magma chambers."})
    with open(folder / "corpus.jsonl", "w") as f:
        for d, text in docs.items():
            f.write(json.dumps({"_id": d, "title": "", "text": text}) + "\n")
    queries = {"q1": "why do cats purr", "q2": "what makes iron rust", "q3": "what causes tides",
               "q4": "budget item 7"}
    with open(folder / "queries.jsonl", "w") as f:
        for q, text in queries.items():
            f.write(json.dumps({"_id": q, "text": text}) + "\n")
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\tcat\t1\nq2\trust\t1\nq3\ttide\t1\nq4\tp07\t1\n"
        "q4\tlava\t1\n")
    return folder


def test_hybrid_shortlist_reranked_with_curve_and_latency(tmp_path, tiny_cross_encoder,
                                                          caplog) -> None:
    data = write_beir(tmp_path / "data")
    raw = {
        "name": "hybrid-e2e",
        "dataset": {"beir": str(data), "split": "test"},
        "first_stage": {"hybrid": {"of": [{"bm25": {}},
                                          {"dense": {"model": "packaged:all-minilm-l6-v2",
                                                     "cache_dir": str(tmp_path / "emb")}}],
                                   "method": "rrf", "params": {"k": 60}},
                        "depth": 10},
        "rerankers": [{"name": "tiny", "kind": "cross-encoder", "model": str(tiny_cross_encoder)}],
        "depths": [2, 10],
        "metrics": ["ndcg@10", "recall@2", "recall@10"],
        "sanity_check": False,
    }
    config = parse_config(raw, base_dir=tmp_path)
    caplog.set_level(logging.INFO, logger="rerank_eval")
    run_experiment(config, out_dir=tmp_path / "out")
    logs = [record.getMessage() for record in caplog.records]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    fs = results["first_stage"]
    assert fs["name"] == "hybrid-rrf"
    assert fs["params"]["method"] == "rrf" and fs["params"]["params"] == {"k": 60}
    assert list(fs["recall_curve"]) == ["1", "2", "3", "5", "10"]
    assert fs["recall_curve"]["10"] == pytest.approx(fs["metrics"]["recall@10"])
    assert fs["latency_ms"]["queries"] == 4 and fs["latency_ms"]["p50"] > 0
    assert fs["latency_ms"]["p95"] >= fs["latency_ms"]["p50"]
    reranker = results["rerankers"][0]
    for depth in ("2", "10"):
        ceiling = reranker["first_stage_recall_at_depth"][depth]
        assert ceiling == fs["recall_curve"][depth]
        # Reordering the top-d keeps the same d documents: recall@d is the first stage's.
        assert reranker["metrics"][depth][f"recall@{depth}"] == pytest.approx(ceiling,
                                                                               abs=1e-12)
    assert (tmp_path / "out" / "first_stage_recall.png").stat().st_size > 1000
    assert any("first-stage recall curve" in line for line in logs)
    assert fs["params"]["components"][1]["corpus_embeddings"]["cache"] == "built"
