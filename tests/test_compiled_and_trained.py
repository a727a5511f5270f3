"""Two paths every full-size CPU run takes, checked in the default suite at a small size:
``compile: auto`` turning torch.compile on (it does at ``compile_min_pairs``, 20,000 pairs by
default, so every full run is compiled), and the trained SciFact checkpoint doing its job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from rerank_eval.datasets import load_dataset
from rerank_eval.first_stage import build_first_stage
from rerank_eval.metrics import evaluate_ranking, parse_metrics
from rerank_eval.models import agreement_tolerance, resolve_dtype
from rerank_eval.rerankers import build_reranker
from rerank_eval.scoring.shortlist import chunk_pairs


def _pairs() -> list[tuple[str, str]]:
    return [(f"query {i} about insulin", f"passage {i} on glucose and insulin levels {i % 3}")
            for i in range(12)]


def test_compile_auto_turns_on_at_the_threshold_and_scores_like_eager(tiny_cross_encoder):
    """compile_min_pairs lowered to 8 (the knob a full run reaches at 20,000): 12 pairs take
    the compiled path, and its scores equal eager's within the tolerance of the dtype ``auto``
    resolves to here. One batch of one shape keeps the compile as short as it gets (about
    30-60 s on 2 shared cores)."""
    params = {"model": str(tiny_cross_encoder), "device": "cpu", "max_length": 32,
              "batch_size": 16}
    eager = build_reranker("eager", "cross-encoder", {**params, "compile": False},
                           base_dir=Path.cwd())
    auto = build_reranker("auto", "cross-encoder", {**params, "compile_min_pairs": 8},
                          base_dir=Path.cwd())
    pairs = _pairs()
    expected = eager.score(pairs)
    got = auto.score(pairs)
    info = auto.describe()
    assert info["compiled"] is True, info["compile_error"]
    assert info["scoring_path"].endswith("/compiled") and eager.describe()["compiled"] is False
    tol = agreement_tolerance(resolve_dtype("auto", torch.device("cpu")))
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * np.abs(expected).max())
    assert np.ptp(expected) > 0  # distinct scores: the comparison is not between constants


def test_the_trained_checkpoint_beats_bm25_on_a_scifact_sample(scifact_dir, scifact_ce):
    """The fine-tuned cross-encoder reranking BM25's top-20 of 20 seeded SciFact queries has a
    higher nDCG@10 than BM25 itself (a broken load, label or pair order would not). The
    pipeline's own pieces (loader, BM25, pairs, scorer, rerank, metrics), without its reports,
    to stay fast."""
    dataset = load_dataset("beir", str(scifact_dir)).sample_queries(20, seed=0)
    assert len(dataset.queries) == 20
    bm25 = build_first_stage("bm25", {}, base_dir=Path.cwd()).retrieve(dataset, 20)
    keys = [(q, d) for q, docs in bm25.ranking.items() for d in docs]
    reranker = build_reranker("ce", "cross-encoder", {"model": str(scifact_ce),
                                                      "max_length": 256}, base_dir=Path.cwd())
    values = reranker.score(chunk_pairs(dataset, keys))
    scores: dict[str, dict[str, float]] = {}
    for (q, d), v in zip(keys, values):
        scores.setdefault(q, {})[d] = float(v)
    reranked = bm25.rerank_at_depth(scores, 20, "scifact-ce")
    metric = parse_metrics(["ndcg@10"])
    before = evaluate_ranking(bm25.ranking, dataset.qrels, metric).means["ndcg@10"]
    after = evaluate_ranking(reranked.ranking, dataset.qrels, metric).means["ndcg@10"]
    assert after > before, (after, before)
