"""Issue #16 end to end on a synthetic BEIR collection and the tiny cross-encoder, in one run:
context length as a measured axis (max_lengths), long documents as windows (long_docs) with
the score cache keyed on the window (maxp, then sump and firstp reuse its windows), latency of
chosen depths with its conditions, and the first stage as the baseline of the advice."""

from __future__ import annotations

import json

import pytest
from rerank_eval import load_config
from rerank_eval.results import read_results
from rerank_eval.runner import run_experiment
from rerank_eval.runs import Run
from rerank_eval.scoring.windows import WindowedShortlist, aggregate
from synthetic import write_beir

QUERIES, DEPTH = 12, 10


@pytest.fixture(scope="module")
def advice_run(tmp_path_factory, tiny_cross_encoder):
    tmp = tmp_path_factory.mktemp("advice")
    data = write_beir(tmp / "beir", queries=QUERIES, docs=80, seed=3)
    model = tiny_cross_encoder

    def windows(name, strategy):
        return (f"  - {{name: {name}, kind: cross-encoder, model: {model}, long_docs: "
                f"{{strategy: {strategy}, passage_tokens: 12, stride: 6}}}}\n")
    path = tmp / "adv.yaml"
    path.write_text(
        "name: adv\n"
        f"dataset: {{beir: {data}}}\n"
        f"first_stage: {{bm25: {{}}, depth: {DEPTH}}}\n"
        "rerankers:\n"
        f"  - {{name: ce, kind: cross-encoder, model: {model}, max_length: 64, "
        "max_lengths: [16, 64], batch_size: 16}\n"
        + windows("maxp", "maxp") + windows("sump", "sump") + windows("firstp", "firstp") +
        "depths: [5, 10]\n"
        "metrics: [ndcg@10, recall@10]\n"
        "sanity_check: false\n"
        f"cache: {{path: {tmp / 'scores.sqlite'}}}\n"
        "latency: {queries: 2, warmup: 0, depths: [10], repeats: 3}\n",
        encoding="utf-8")
    run_experiment(load_config(path), out_dir=tmp / "out")
    return tmp / "out", read_results(tmp / "out")


def test_max_lengths_score_the_shortlist_per_length_and_choose_jointly(advice_run):
    out, r = advice_run
    rr = r.reranker("ce")
    documents = QUERIES * DEPTH
    assert rr.pairs_scored == documents and rr.long_docs is None  # whole passages
    assert set(rr.by_max_length) == {"16", "64"}
    short, full = rr.by_max_length["16"], rr.by_max_length["64"]
    assert short.pairs_scored == full.pairs_scored == documents  # one pass per length
    assert short.pairs_truncated > full.pairs_truncated  # 16 tokens cut nearly every pair
    assert full.metrics == rr.metrics  # max_length's own pass is the main entry
    assert set(short.metrics) == {"5", "10"} and set(short.latency_ms) == {"10"}
    assert rr.recommended_max_length in (16, 64)
    assert rr.recommendation.max_length == rr.recommended_max_length
    html = (out / "report.html").read_text()
    assert "Quality vs context length" in html and "Long documents (long_docs)" in html


def test_the_first_stage_is_the_baseline_and_latency_says_what_it_timed(advice_run):
    out, r = advice_run
    rr = r.reranker("ce")
    assert set(rr.vs_first_stage) == {"5", "10"}
    fs = r.first_stage.metrics["ndcg@10"]
    assert rr.recommendation.first_stage_quality == fs
    assert rr.vs_first_stage["10"].difference == pytest.approx(rr.metrics["10"]["ndcg@10"] - fs)
    if rr.recommended_depth == 0:  # the tiny model is random: either advice is possible
        assert rr.recommendation.action == "don't rerank"
    assert set(rr.latency_ms) == {"10"}
    assert rr.latency_setup.seconds > 0 and rr.latency_setup.reliable is not None
    raw = json.loads((out / "results.json").read_text())
    assert raw["config"]["latency"]["depths"] == [10]


def test_long_docs_score_windows_count_them_and_reuse_the_cache(advice_run):
    out, r = advice_run
    documents = QUERIES * DEPTH
    maxp, sump, firstp = (r.reranker(n) for n in ("maxp", "sump", "firstp"))
    assert maxp.documents_scored == maxp.long_docs.documents == documents
    assert maxp.long_docs.documents_split > 0
    assert maxp.pairs_scored == maxp.long_docs.windows > documents  # (query, window) pairs
    assert maxp.latency_ms["10"].pairs_per_query > DEPTH  # windows, not documents, are timed
    # the same windows: every score from the cache; firstp's are the first of each
    assert sump.pairs_scored == 0 and sump.pairs_from_cache == maxp.long_docs.windows
    assert firstp.pairs_scored == 0 and firstp.pairs_from_cache == documents
    scores = {n: (out / "runs" / f"{n}.scores.tsv").read_text() for n in ("maxp", "sump")}
    assert scores["maxp"] != scores["sump"]  # split documents: max vs sum of their windows


def test_window_scores_aggregate_to_max_or_sum_per_document():
    split = WindowedShortlist(dataset=None, shortlist=Run("w"),  # type: ignore[arg-type]
                              windows={"a": ["a#w0", "a#w1"], "b": ["b#w0"]},
                              documents=2, pairs=3)
    scores = {"q": {"a#w0": 1.0, "a#w1": 3.0, "b#w0": 2.0}}
    shortlist = Run("s", {"q": ["a", "b"]})
    assert aggregate(scores, split, shortlist, "maxp") == {"q": {"a": 3.0, "b": 2.0}}
    assert aggregate(scores, split, shortlist, "sump") == {"q": {"a": 4.0, "b": 2.0}}
