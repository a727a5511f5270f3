"""Issue #16 end to end on a synthetic BEIR collection and the tiny cross-encoder: context
length as a measured axis (max_lengths), long documents as windows (long_docs) with the score
cache keyed on the window, latency of chosen depths with its conditions, and the first stage
as the baseline of every recommendation."""

from __future__ import annotations

import json

import pytest
from rerank_eval import load_config
from rerank_eval.results import read_results
from rerank_eval.runner import run_experiment
from rerank_eval.runs import Run
from rerank_eval.scoring.windows import WindowedShortlist, aggregate
from synthetic import write_beir


def _config(tmp_path, data, model, rerankers: str, name: str = "adv"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\n"
        f"dataset: {{beir: {data}}}\n"
        "first_stage: {bm25: {}, depth: 10}\n"
        "rerankers:\n" + rerankers +
        "depths: [5, 10]\n"
        "metrics: [ndcg@10, recall@10]\n"
        "sanity_check: false\n"
        "latency: {queries: 2, warmup: 0, depths: [10], repeats: 3}\n",
        encoding="utf-8")
    return load_config(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_beir(tmp_path_factory.mktemp("beir"), queries=12, docs=80, seed=3)


def test_max_lengths_score_the_shortlist_per_length_and_choose_jointly(tmp_path, data,
                                                                      tiny_cross_encoder):
    cfg = _config(tmp_path, data, tiny_cross_encoder,
                  f"  - {{name: ce, kind: cross-encoder, model: {tiny_cross_encoder}, "
                  "max_length: 64, max_lengths: [16, 64], batch_size: 16}\n")
    run_experiment(cfg, out_dir=tmp_path / "out")
    r = read_results(tmp_path / "out")
    rr = r.reranker("ce")
    pairs = rr.pairs_scored + rr.pairs_from_cache
    assert set(rr.by_max_length) == {"16", "64"}
    short, full = rr.by_max_length["16"], rr.by_max_length["64"]
    assert short.pairs_scored == full.pairs_scored == pairs  # one pass per length
    assert short.pairs_truncated > full.pairs_truncated  # 16 tokens cut nearly every pair
    assert full.metrics == rr.metrics  # max_length's own pass is the main entry
    assert set(short.metrics) == {"5", "10"} and set(short.latency_ms) == {"10"}
    assert rr.recommended_max_length in (16, 64)
    assert rr.recommendation.max_length == rr.recommended_max_length
    # the first stage is the baseline of every depth and of the recommendation
    assert set(rr.vs_first_stage) == {"5", "10"}
    fs = r.first_stage.metrics["ndcg@10"]
    assert rr.recommendation.first_stage_quality == fs
    assert rr.vs_first_stage["10"].difference == pytest.approx(rr.metrics["10"]["ndcg@10"] - fs)
    # latency: only the depths asked for, with how long it took and whether to trust it
    assert set(rr.latency_ms) == {"10"}
    assert rr.latency_setup.seconds > 0 and rr.latency_setup.reliable is not None
    raw = json.loads((tmp_path / "out" / "results.json").read_text())
    assert raw["config"]["latency"]["depths"] == [10]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Quality vs context length" in html


def test_long_docs_score_windows_count_them_and_reuse_the_cache(tmp_path, data,
                                                              tiny_cross_encoder):
    def run(strategy, name):
        cfg = _config(tmp_path, data, tiny_cross_encoder,
                      f"  - {{name: ce, kind: cross-encoder, model: {tiny_cross_encoder}, "
                      f"long_docs: {{strategy: {strategy}, passage_tokens: 12, stride: 6}}}}\n",
                      name=name)
        run_experiment(cfg, out_dir=tmp_path / name)
        return read_results(tmp_path / name).reranker("ce")

    maxp = run("maxp", "maxp")
    documents = maxp.documents_scored
    assert documents == 12 * 10
    assert maxp.long_docs.documents == documents and maxp.long_docs.documents_split > 0
    assert maxp.pairs_scored == maxp.long_docs.windows > documents  # (query, window) pairs
    assert set(maxp.latency_ms) == {"10"}
    assert maxp.latency_ms["10"].pairs_per_query > 10  # windows, not documents, are timed
    sump = run("sump", "sump")  # same windows: every score from the cache
    assert sump.pairs_scored == 0 and sump.pairs_from_cache == maxp.long_docs.windows
    scores = {name: (tmp_path / name / "runs" / "ce.scores.tsv").read_text()
              for name in ("maxp", "sump")}
    assert scores["maxp"] != scores["sump"]  # split documents: max vs sum of their windows
    firstp = run("firstp", "firstp")  # first windows only, all already scored
    assert firstp.pairs_scored == 0 and firstp.pairs_from_cache == documents
    first = run("first", "first")  # whole passages: new pairs, no windows
    assert first.long_docs is None and first.pairs_scored == documents
    html = (tmp_path / "maxp" / "report.html").read_text()
    assert "Long documents (long_docs)" in html


def test_window_scores_aggregate_to_max_or_sum_per_document():
    split = WindowedShortlist(dataset=None, shortlist=Run("w"),  # type: ignore[arg-type]
                              windows={"a": ["a#w0", "a#w1"], "b": ["b#w0"]},
                              documents=2, pairs=3)
    scores = {"q": {"a#w0": 1.0, "a#w1": 3.0, "b#w0": 2.0}}
    shortlist = Run("s", {"q": ["a", "b"]})
    assert aggregate(scores, split, shortlist, "maxp") == {"q": {"a": 3.0, "b": 2.0}}
    assert aggregate(scores, split, shortlist, "sump") == {"q": {"a": 4.0, "b": 2.0}}
