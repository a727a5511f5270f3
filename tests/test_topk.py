"""Chunked exact top-k equals a brute-force sort under the project's tie rule."""

from __future__ import annotations

import numpy as np
import pytest
from rerank_eval.first_stage.topk import doc_id_tiebreak, exact_topk
from rerank_eval.runs import order_by_score


def brute_force(queries: np.ndarray, corpus: np.ndarray, doc_ids: list[str], k: int):
    """Every score computed, ordered by order_by_score (score desc, doc id desc), cut at k."""
    out = []
    for q in queries:
        scores = {d: float(s) for d, s in zip(doc_ids, (corpus @ q).astype(np.float32))}
        ranked = order_by_score(scores)[:k]
        out.append([(d, scores[d]) for d in ranked])
    return out


def as_ids(idx: np.ndarray, scores: np.ndarray, doc_ids: list[str]):
    return [[(doc_ids[i], float(s)) for i, s in zip(row_i, row_s)]
            for row_i, row_s in zip(idx.tolist(), scores.tolist())]


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64])
@pytest.mark.parametrize("k", [1, 5, 23, 40])
def test_matches_brute_force_with_many_ties(chunk_size: int, k: int) -> None:
    rng = np.random.default_rng(k * 100 + chunk_size)
    # Small integer vectors: many exactly tied scores, including negative ones and zeros.
    corpus = rng.integers(-2, 3, size=(37, 4)).astype(np.float32)
    queries = rng.integers(-2, 3, size=(6, 4)).astype(np.float32)
    doc_ids = [f"d{rng.integers(0, 10**6)}-{i}" for i in range(len(corpus))]
    idx, scores = exact_topk(queries, corpus, k, doc_id_tiebreak(doc_ids), chunk_size=chunk_size,
                             query_batch=4)
    assert as_ids(idx, scores, doc_ids) == brute_force(queries, corpus, doc_ids, min(k, 37))


def test_random_float_embeddings_and_memmap_corpus(tmp_path) -> None:
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((500, 16)).astype(np.float32)
    np.save(tmp_path / "c.npy", corpus)
    mapped = np.load(tmp_path / "c.npy", mmap_mode="r")
    queries = rng.standard_normal((9, 16)).astype(np.float32)
    doc_ids = [str(i) for i in range(500)]
    idx, scores = exact_topk(queries, mapped, 50, doc_id_tiebreak(doc_ids), chunk_size=64)
    expected = np.argsort(-(queries @ corpus.T), axis=1, kind="stable")[:, :50]
    assert np.array_equal(idx, expected)
    assert np.allclose(scores, np.take_along_axis(queries @ corpus.T, expected, axis=1),
                       atol=1e-5)


def test_ties_keep_the_larger_doc_id_at_the_cut() -> None:
    corpus = np.ones((5, 2), dtype=np.float32)  # every document scores the same
    doc_ids = ["a", "c", "b", "e", "d"]
    idx, _ = exact_topk(np.ones((1, 2), dtype=np.float32), corpus, 2, doc_id_tiebreak(doc_ids),
                        chunk_size=2)
    assert [doc_ids[i] for i in idx[0]] == ["e", "d"]


def test_k_larger_than_corpus_returns_everything() -> None:
    corpus = np.eye(3, dtype=np.float32)
    idx, scores = exact_topk(np.array([[0, 1, 0]], dtype=np.float32), corpus, 10,
                             doc_id_tiebreak(["x", "y", "z"]))
    assert idx.shape == (1, 3) and idx[0, 0] == 1 and scores[0, 0] == 1.0
