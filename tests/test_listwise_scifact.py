"""Acceptance on SciFact (50 queries, BM25 top-100, depths 20/50/100) against the loopback
chat server: a perfect oracle reaches the ideal nDCG@10 of the first stage's top-d at every
depth with one pass per depth (1, 4 and 9 windows per query), a re-run sends nothing, and a
run with faults injected per window finishes with exactly those faults counted.

Slow (BM25 over 5k documents, ~1,400 windows per run): ``pytest -m slow
tests/test_listwise_scifact.py -s`` (``-s`` shows the numbers)."""

from __future__ import annotations

from random import Random

import pytest
from fake_chat_server import FakeChatServer
from rerank_eval.config import parse_config
from rerank_eval.rerankers.listwise import window_spans
from rerank_eval.results import read_results
from rerank_eval.runner import run_experiment
from test_listwise import ENV, KEY, ndcg_at_10, oracle, read_beir, read_trec

pytestmark = pytest.mark.slow
DEPTHS = [20, 50, 100]


def _config(tmp_path, scifact_dir, url):
    return parse_config({
        "name": "scifact-listwise",
        "dataset": {"beir": str(scifact_dir), "split": "test",
                    "sample": {"queries": 50, "seed": 0}},
        "first_stage": {"bm25": {"k1": 0.9, "b": 0.4}, "depth": 100},
        "rerankers": [{"name": "oracle-lw", "kind": "listwise", "model": "oracle",
                       "base_url": url, "api_key_env": ENV, "concurrency": 4,
                       "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 0.5}],
        "depths": DEPTHS, "metrics": ["ndcg@10"], "sanity_check": False,
        "latency": {"queries": 0},
        "cache": {"path": str(tmp_path / "cache.sqlite")}}, base_dir=tmp_path)


def test_scifact_oracle_depth_curve_and_cached_rerun(tmp_path, scifact_dir, monkeypatch):
    monkeypatch.setenv(ENV, KEY)
    _, _, qrels = read_beir(scifact_dir)
    with FakeChatServer(KEY, oracle(scifact_dir)) as server:
        config = _config(tmp_path, scifact_dir, server.url)
        run_experiment(config, out_dir=tmp_path / "first")
        sent = len(server.requests)
        run_experiment(config, out_dir=tmp_path / "second")
        assert len(server.requests) == sent
    entry = read_results(tmp_path / "first" / "results.json").reranker("oracle-lw")
    again = read_results(tmp_path / "second" / "results.json").reranker("oracle-lw")
    fs = read_trec(tmp_path / "first" / "runs" / "first_stage.trec")
    assert len(fs) == 50
    full = sum(len(d) >= 100 for d in fs.values())  # one query has only 66 BM25 hits
    lw = entry.listwise
    assert lw is not None and again.listwise is not None
    for depth, per_query in zip(DEPTHS, (1, 4, 9)):
        ideal = sum(ndcg_at_10(sorted(fs[q][:depth], key=lambda d: -qrels[q].get(d, 0)),
                               qrels[q]) for q in fs) / len(fs)
        got = entry.metrics[str(depth)]["ndcg@10"]
        print(f"depth {depth}: nDCG@10 {got:.4f} (ideal from BM25 top-{depth}: {ideal:.4f}); "
              f"requests {lw.per_depth[str(depth)].requests}, "
              f"second run {again.listwise.per_depth[str(depth)].requests}")
        assert got == pytest.approx(ideal, abs=1e-9)
        assert lw.per_depth[str(depth)].windows == sum(
            per_query if len(d) >= depth else len(window_spans(len(d), 20, 10))
            for d in fs.values())
    assert lw.requests == sent and again.listwise.requests == 0
    print(f"first run: {sent} requests for {lw.windows} windows ({full} of 50 queries have "
          "a full top-100); second run: 0")


def test_scifact_faults_are_counted(tmp_path, scifact_dir, monkeypatch):
    monkeypatch.setenv(ENV, KEY)
    faults = (["duplicate"] * 5 + ["out_of_range"] * 4 + ["missing"] * 3 + ["prose"] * 2
              + ["think"] * 6 + ["429", "500", "timeout"])
    Random(0).shuffle(faults)
    with FakeChatServer(KEY, oracle(scifact_dir), retry_after="0.1", hang_s=1.0) as server:
        server.fail_next(*faults)
        run_experiment(_config(tmp_path, scifact_dir, server.url), out_dir=tmp_path / "out")
    entry = read_results(tmp_path / "out" / "results.json").reranker("oracle-lw")
    lw, usage = entry.listwise, entry.usage
    assert lw is not None and usage is not None
    counts = lw.model_dump(include={"windows", "requests", "answers", "ok", "wrong_format",
                                    "repetition", "out_of_range", "missing", "kept_order"})
    curve = ", ".join(f"@{d}: {entry.metrics[str(d)]['ndcg@10']:.4f}" for d in DEPTHS)
    print(f"faults: {counts}; retries {usage.retry_reasons}; nDCG@10 {curve}")
    assert (lw.repetition, lw.out_of_range, lw.missing, lw.kept_order) == (5, 4, 3, 2)
    assert lw.wrong_format == 2 and lw.ok == lw.answers - 14 and lw.answers == lw.requests
    assert usage.retry_reasons == {"HTTP 429": 1, "HTTP 500": 1, "timeout": 1}
    fs = read_trec(tmp_path / "out" / "runs" / "first_stage.trec")
    assert lw.windows == sum(len(window_spans(min(d, len(docs)), 20, 10))
                             for d in DEPTHS for docs in fs.values())
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert leaks == []
