"""Metrics equal trec_eval (pytrec_eval is the oracle) to 1e-6, with ties and missing queries."""

from __future__ import annotations

import random

import numpy as np
import pytest
import pytrec_eval
from rerank_eval.datasets.formats import read_qrels
from rerank_eval.metrics import evaluate_ranking, parse_metrics
from rerank_eval.runs import Run, read_trec_run

METRICS = parse_metrics(["ndcg@10", "ndcg@5", "mrr@10", "recall@20", "recall@100", "map@100",
                         "map@10", "p@5", "p@10"])


def _random_case(seed: int, with_ties: bool):
    rng = random.Random(seed)
    docs = [f"d{i:03d}" for i in range(60)]
    qrels, scores = {}, {}
    for q in range(25):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 25))
        qrels[qid] = {d: rng.choice([0, 0, 1, 2, 3]) for d in judged}
        if q % 7 == 3:
            continue  # judged query with no results: trec_eval -c counts it as 0
        retrieved = rng.sample(docs, rng.randint(1, 50))
        if with_ties:
            scores[qid] = {d: float(rng.randint(0, 5)) for d in retrieved}
        else:
            scores[qid] = {d: rng.random() for d in retrieved}
    scores["unjudged-query"] = {"d001": 1.0}
    return qrels, scores


def _oracle(qrels, run: Run, threshold: int) -> dict[str, float]:
    """pytrec_eval on the saved (strictly ordered) run; means over all judged queries (-c)."""
    trec_run = {q: {d: float(len(docs) - i) for i, d in enumerate(docs)}
                for q, docs in run.ranking.items() if docs}
    graded = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.5,10"})
    binary = pytrec_eval.RelevanceEvaluator(
        qrels, {"recall.20,100", "map_cut.10,100", "P.5,10"}, relevance_level=threshold)
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=threshold)
    top10 = {q: {d: s for d, s in sorted(r.items(), key=lambda x: -x[1])[:10]}
             for q, r in trec_run.items()}
    g, b, r = graded.evaluate(trec_run), binary.evaluate(trec_run), rr.evaluate(top10)
    names = {"ndcg@10": (g, "ndcg_cut_10"), "ndcg@5": (g, "ndcg_cut_5"),
             "mrr@10": (r, "recip_rank"), "recall@20": (b, "recall_20"),
             "recall@100": (b, "recall_100"), "map@100": (b, "map_cut_100"),
             "map@10": (b, "map_cut_10"), "p@5": (b, "P_5"), "p@10": (b, "P_10")}
    return {m: float(np.mean([res[q][key] if q in res else 0.0 for q in qrels]))
            for m, (res, key) in names.items()}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("with_ties", [False, True])
@pytest.mark.parametrize("threshold", [1, 2])
def test_every_metric_equals_trec_eval(seed, with_ties, threshold):
    qrels, scores = _random_case(seed, with_ties)
    run = Run.from_scores("random", scores)
    ours = evaluate_ranking(run.ranking, qrels, METRICS, relevance_threshold=threshold)
    oracle = _oracle(qrels, run, threshold)
    for metric, expected in oracle.items():
        assert ours.means[metric] == pytest.approx(expected, abs=1e-6), metric


def test_ties_are_broken_like_trec_eval_by_doc_id_descending():
    qrels = {"q": {"a": 1}}
    # Equal scores: trec_eval ranks "c" first, then "b", then "a".
    scores = {"q": {"a": 1.0, "b": 1.0, "c": 1.0}}
    run = Run.from_scores("tied", scores)
    assert run.ranking["q"] == ["c", "b", "a"]
    oracle = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(scores)
    ours = evaluate_ranking(run.ranking, qrels, parse_metrics(["mrr"]))
    assert ours.means["mrr"] == pytest.approx(oracle["q"]["recip_rank"]) == pytest.approx(1 / 3)


def test_queries_without_results_count_as_zero_and_are_counted():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    ev = evaluate_ranking({"q1": ["a"]}, qrels, parse_metrics(["ndcg@10"]))
    assert ev.means["ndcg@10"] == pytest.approx(0.5)
    assert ev.queries == 2 and ev.queries_without_results == 1
    assert ev.per_query["ndcg@10"] == {"q1": 1.0, "q2": 0.0}


def test_relevance_threshold_changes_binary_metrics_but_not_graded_ndcg():
    qrels = {"q": {"a": 1, "b": 2}}
    ranking = {"q": ["a", "b"]}
    lenient = evaluate_ranking(ranking, qrels, parse_metrics(["mrr@10", "ndcg@10"]), 1)
    strict = evaluate_ranking(ranking, qrels, parse_metrics(["mrr@10", "ndcg@10"]), 2)
    assert lenient.means["mrr@10"] == 1.0 and strict.means["mrr@10"] == 0.5
    assert lenient.means["ndcg@10"] == strict.means["ndcg@10"] < 1.0


def test_official_dl19_bm25_run_gives_the_published_ndcg(dl19_dir):
    """TREC DL 2019 passage, official BM25 top-100 vs official qrels: nDCG@10 = 0.5058."""
    qrels = read_qrels(dl19_dir / "official" / "qrels.dl19-passage.txt")
    run = read_trec_run(dl19_dir / "runs" / "bm25_top100.trec")
    judged = {q: j for q, j in qrels.items() if q in run.ranking}
    ev = evaluate_ranking(run.ranking, judged, parse_metrics(["ndcg@10", "map@1000",
                                                             "recall@100"]), 2)
    assert ev.queries == 43
    assert ev.means["ndcg@10"] == pytest.approx(0.5058, abs=5e-5)
    oracle = pytrec_eval.RelevanceEvaluator(judged, {"map_cut.1000", "recall.100"},
                                            relevance_level=2).evaluate(
        {q: {d: float(len(docs) - i) for i, d in enumerate(docs)}
         for q, docs in run.ranking.items()})
    for metric, key in [("map@1000", "map_cut_1000"), ("recall@100", "recall_100")]:
        expected = float(np.mean([oracle[q][key] for q in judged]))
        assert ev.means[metric] == pytest.approx(expected, abs=1e-6)
