"""Exact top-k by inner product, chunked over the corpus with a running top-k.

Memory stays bounded by ``query_batch x chunk_size`` whatever the corpus size (a memory-mapped
1M x 384 matrix is read one chunk at a time). Selection follows the project's tie rule exactly:
score descending, then doc id descending, so which of several tied documents survives the cut
at k is decided, not left to the partition algorithm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_LOW_31 = np.int32(0x7FFFFFFF)


def doc_id_tiebreak(doc_ids: Sequence[str]) -> np.ndarray:
    """Each document's position in ascending doc id byte order (higher wins a tie)."""
    order = sorted(range(len(doc_ids)), key=lambda i: doc_ids[i].encode("utf-8"))
    ranks = np.empty(len(doc_ids), dtype=np.int64)
    ranks[np.asarray(order, dtype=np.int64)] = np.arange(len(doc_ids), dtype=np.int64)
    return ranks


def _score_keys(scores: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """int64 keys whose order is (score, tiebreak): float32 bits made sortable as integers."""
    scores = np.ascontiguousarray(scores, dtype=np.float32) + np.float32(0.0)  # -0.0 -> 0.0
    bits = scores.view(np.int32)
    ordered = np.where(bits >= 0, bits, bits ^ _LOW_31).astype(np.int64)
    return (ordered << 32) | tiebreak


def _key_scores(keys: np.ndarray) -> np.ndarray:
    """The float32 scores encoded in ``keys``."""
    high = (keys >> 32).astype(np.int32)
    return np.where(high >= 0, high, high ^ _LOW_31).astype(np.int32).view(np.float32)


def exact_topk(
    queries: np.ndarray,
    corpus: np.ndarray,
    k: int,
    tiebreak: np.ndarray,
    *,
    chunk_size: int = 16384,
    query_batch: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` corpus rows per query by inner product.

    Returns (indices, scores), each ``(n_queries, min(k, n_corpus))``, best first.
    ``corpus`` may be a ``np.memmap``; it is only read chunk by chunk.
    """
    queries = np.asarray(queries, dtype=np.float32)
    n_docs = int(corpus.shape[0])
    k = min(int(k), n_docs)
    n_queries = queries.shape[0]
    out_idx = np.empty((n_queries, k), dtype=np.int64)
    out_scores = np.empty((n_queries, k), dtype=np.float32)
    if k == 0 or n_queries == 0:
        return out_idx, out_scores
    for q0 in range(0, n_queries, query_batch):
        q = queries[q0 : q0 + query_batch]
        best_keys = np.empty((q.shape[0], 0), dtype=np.int64)
        best_idx = np.empty((q.shape[0], 0), dtype=np.int64)
        for start in range(0, n_docs, chunk_size):
            stop = min(start + chunk_size, n_docs)
            block = np.asarray(corpus[start:stop], dtype=np.float32)
            keys = _score_keys(q @ block.T, tiebreak[start:stop])
            idx = np.broadcast_to(np.arange(start, stop, dtype=np.int64), keys.shape)
            cand_keys = np.concatenate([best_keys, keys], axis=1)
            cand_idx = np.concatenate([best_idx, idx], axis=1)
            if cand_keys.shape[1] > k:
                keep = np.argpartition(cand_keys, cand_keys.shape[1] - k, axis=1)[:, -k:]
                cand_keys = np.take_along_axis(cand_keys, keep, axis=1)
                cand_idx = np.take_along_axis(cand_idx, keep, axis=1)
            best_keys, best_idx = cand_keys, cand_idx
        order = np.argsort(best_keys, axis=1)[:, ::-1]
        best_keys = np.take_along_axis(best_keys, order, axis=1)
        out_idx[q0 : q0 + q.shape[0]] = np.take_along_axis(best_idx, order, axis=1)
        out_scores[q0 : q0 + q.shape[0]] = _key_scores(best_keys)
    return out_idx, out_scores
