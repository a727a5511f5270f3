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


def _oracle(qrels, scores: dict[str, dict[str, float]], threshold: int) -> dict[str, float]:
    """pytrec_eval on the raw scores, ties included: it breaks them itself, by doc id
    descending as trec_eval does, so a different tie rule of ours shows up as a difference.
    Means over all judged queries (-c)."""
    trec_run = {q: dict(s) for q, s in scores.items() if s}
    graded = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.5,10"})
    binary = pytrec_eval.RelevanceEvaluator(
        qrels, {"recall.20,100", "map_cut.10,100", "P.5,10", "recip_rank"},
        relevance_level=threshold)
    g, b = graded.evaluate(trec_run), binary.evaluate(trec_run)
    # mrr@10 from trec_eval's reciprocal rank: 1/rank of the first relevant document, which
    # counts when that rank is <= 10, i.e. when the reciprocal rank is >= 1/10.
    for res in b.values():
        res["rr_cut_10"] = res["recip_rank"] if res["recip_rank"] >= 0.1 - 1e-12 else 0.0
    names = {"ndcg@10": (g, "ndcg_cut_10"), "ndcg@5": (g, "ndcg_cut_5"),
             "mrr@10": (b, "rr_cut_10"), "recall@20": (b, "recall_20"),
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
    oracle = _oracle(qrels, scores, threshold)
    for metric, expected in oracle.items():
        assert ours.means[metric] == pytest.approx(expected, abs=1e-6), metric


def test_the_tied_cases_really_hold_ties_that_change_metrics():
    """The "with ties" cases would prove nothing if their ties never moved a relevant
    document: another tie rule (doc id ascending) must give other metrics on them."""
    changed = 0
    for seed in range(4):
        qrels, scores = _random_case(seed, with_ties=True)
        descending = {q: sorted(sorted(s, reverse=True), key=lambda d: -s[d])
                      for q, s in scores.items()}
        ascending = {q: sorted(s, key=lambda d: (-s[d], d)) for q, s in scores.items()}
        one = evaluate_ranking(descending, qrels, METRICS)
        other = evaluate_ranking(ascending, qrels, METRICS)
        changed += any(abs(one.means[m] - other.means[m]) > 1e-6 for m in one.means)
    assert changed == 4


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
