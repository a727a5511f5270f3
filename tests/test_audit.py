"""The audit: relevant passages a reranker moved across the output cut k, with both ranks."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml
from rerank_eval.analysis.audit import audit_depth, audit_reranker, score_summary
from rerank_eval.config import load_config, parse_config
from rerank_eval.errors import InputError

FIRST_STAGE = {"q1": ["a", "b", "c", "d", "e", "f"], "q2": ["x", "y", "z"]}
QRELS = {"q1": {"a": 1, "c": 2, "f": 1, "b": 0}, "q2": {"z": 1}}


def test_dropped_and_rescued_passages_are_listed_with_both_ranks():
    reranked = {"q1": ["f", "b", "d", "e", "a", "c"], "q2": ["z", "x", "y"]}
    events = audit_depth("ce", FIRST_STAGE, reranked, QRELS, depth=6, k=3,
                         relevance_threshold=1, model_scores={})
    found = {(e.query_id, e.doc_id, e.change, e.first_stage_rank, e.reranked_rank)
             for e in events}
    assert found == {("q1", "a", "dropped", 1, 5), ("q1", "c", "dropped", 3, 6),
                     ("q1", "f", "rescued", 6, 1)}
    # z moved from rank 3 to 1 but was inside the cut both times: not an event.


def test_relevance_threshold_decides_which_passages_count():
    reranked = {"q1": ["f", "b", "d", "e", "a", "c"]}
    events = audit_depth("ce", FIRST_STAGE, reranked, QRELS, depth=6, k=3,
                         relevance_threshold=2, model_scores={})
    assert [(e.doc_id, e.change, e.grade) for e in events] == [("c", "dropped", 2)]


def test_depth_at_or_below_k_cannot_move_anything_across_the_cut():
    scores = {"q1": {d: float(i) for i, d in enumerate(FIRST_STAGE["q1"])}}  # reverses order
    out = audit_reranker("ce", {"q1": FIRST_STAGE["q1"]}, scores, {"q1": QRELS["q1"]},
                         [3, 6], k=3, relevance_threshold=1, reports_dir=_tmp(), append=False)
    assert out["audit"]["3"] == {"k": 3, "dropped": 0, "rescued": 0, "net": 0}
    # depth 6, reversed: f (rank 6) enters the top 3; a (1) and c (3) leave it.
    assert out["audit"]["6"] == {"k": 3, "dropped": 2, "rescued": 1, "net": -1}


def _tmp():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="audit-"))


def test_audit_files_keep_earlier_rerankers_and_list_largest_losses(tmp_path):
    reverse = {"q1": {d: float(i) for i, d in enumerate(FIRST_STAGE["q1"])}}
    keep = {"q1": {d: float(-i) for i, d in enumerate(FIRST_STAGE["q1"])}}
    ranking = {"q1": FIRST_STAGE["q1"]}
    qrels = {"q1": QRELS["q1"]}
    audit_reranker("bad", ranking, reverse, qrels, [6], k=3, relevance_threshold=1,
                   reports_dir=tmp_path, append=False)
    audit_reranker("same", ranking, keep, qrels, [6], k=3, relevance_threshold=1,
                   reports_dir=tmp_path, append=True)
    with open(tmp_path / "audit.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["reranker"], r["doc_id"], r["change"]) for r in rows} == {
        ("bad", "a", "dropped"), ("bad", "c", "dropped"), ("bad", "f", "rescued")}
    md = (tmp_path / "audit.md").read_text()
    assert "| bad | 6 | 3 | 2 | 1 |" in md
    # a fell from 1 to 6, c from 3 to 4: the largest loss comes first.
    assert md.index("| q1 | a | 1 | 1 | 6 |") < md.index("| q1 | c | 2 | 3 | 4 |")
    # A new run (append=False) starts the file afresh.
    audit_reranker("same", ranking, keep, qrels, [6], k=3, relevance_threshold=1,
                   reports_dir=tmp_path, append=False)
    with open(tmp_path / "audit.csv", newline="") as f:
        assert list(csv.DictReader(f)) == []


def test_score_summary_matches_numpy_and_counts_non_finite_scores():
    scores = {"q1": {"a": 1.0, "b": -2.0, "c": 0.5}, "q2": {"x": 3.0, "y": float("nan")}}
    summary = score_summary(scores)
    finite = np.array([1.0, -2.0, 0.5, 3.0])
    assert summary["pairs"] == 5 and summary["non_finite"] == 1
    assert summary["min"] == -2.0 and summary["max"] == 3.0
    assert summary["mean"] == pytest.approx(finite.mean())
    assert summary["p25"] == pytest.approx(np.percentile(finite, 25))
    assert summary["p95"] == pytest.approx(np.percentile(finite, 95))


def _config(tmp_path, **extra):
    raw = {"name": "t", "dataset": {"bundled": "quickstart"}, "first_stage": {"bm25": {},
           "depth": 20}, **extra}
    return parse_config(raw, base_dir=tmp_path)


def test_audit_k_is_configurable_and_validated(tmp_path):
    assert _config(tmp_path).audit.k == 10
    assert _config(tmp_path, audit={"k": 5}).audit.k == 5
    assert _config(tmp_path, audit={"k": 5}).resolved()["audit"] == {"k": 5}
    with pytest.raises(InputError, match="audit: unknown key 'cut'"):
        _config(tmp_path, audit={"cut": 5})
    with pytest.raises(InputError, match="audit.k: must be a positive integer, got 0"):
        _config(tmp_path, audit={"k": 0})


def test_pipeline_writes_audit_totals_that_match_the_audit_file(tmp_path, tiny_cross_encoder):
    from rerank_eval.runner import run_experiment

    cfg = {"name": "audit-run", "dataset": {"bundled": "quickstart"},
           "first_stage": {"bm25": {}, "depth": 20},
           "rerankers": [{"name": "tiny", "kind": "cross-encoder",
                          "model": str(tiny_cross_encoder), "max_length": 64}],
           "depths": [5, 20], "metrics": ["ndcg@10"], "audit": {"k": 5},
           "sanity_check": False}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = run_experiment(load_config(path), out_dir=tmp_path / "out")
    import json

    entry = json.loads((tmp_path / "out" / "results.json").read_text())["rerankers"][0]
    with open(tmp_path / "out" / "audit.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert entry["audit"]["5"] == {"k": 5, "dropped": 0, "rescued": 0, "net": 0}
    at20 = entry["audit"]["20"]
    assert at20["dropped"] == sum(r["change"] == "dropped" for r in rows)
    assert at20["rescued"] == sum(r["change"] == "rescued" for r in rows)
    assert at20["dropped"] + at20["rescued"] > 0  # a random model reshuffles the top 20
    for r in rows:  # every event really crossed the cut, and is relevant
        first, new = int(r["first_stage_rank"]), int(r["reranked_rank"])
        assert (first <= 5 < new) if r["change"] == "dropped" else (new <= 5 < first)
        assert int(r["grade"]) >= result.config.relevance_threshold
    summary = entry["score_summary"]
    assert summary["pairs"] == entry["pairs_scored"]
    assert summary["min"] <= summary["p5"] <= summary["p50"] <= summary["p95"] <= summary["max"]


def test_audit_md_escapes_hostile_names_and_ids(tmp_path):
    hostile = "<script>alert(1)</script>|x"
    reverse = {"q1": {d: float(i) for i, d in enumerate(FIRST_STAGE["q1"])}}
    audit_reranker(hostile, {"q1\n`q`|": FIRST_STAGE["q1"]},
                   {"q1\n`q`|": reverse["q1"]}, {"q1\n`q`|": QRELS["q1"]}, [6], k=3,
                   relevance_threshold=1, reports_dir=tmp_path, append=False)
    md = (tmp_path / "audit.md").read_text()
    assert "<script>" not in md
    assert "| &lt;script&gt;alert(1)&lt;/script&gt;\\|x | 6 | 3 | 2 | 1 |" in md
    assert "## &lt;script&gt;alert(1)&lt;/script&gt;\\|x @ depth 6" in md
    assert "| q1 \\`q\\`\\| | a | 1 | 1 | 6 |" in md
