"""Ranking a shortlist with a listwise reranker, one sliding-window pass per depth.

A pointwise reranker's scores serve every depth (depth d keeps the top d of one scoring
pass); a listwise model's order over the top-d depends on d, so depth d is its own pass over
the first stage's top d, and each depth's requests are counted apart. The final order of a
pass becomes strictly decreasing scores (d for the first, d - 1 for the next, ..., 1), which
runs, audit, compare, gate and the depth recommendation use unchanged.

Queries are ranked ``reranker.concurrency`` at a time (a query's windows depend on each
other and are sequential); every window's answer goes to the score cache as it arrives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rerank_eval.datasets import Dataset
from rerank_eval.progress import Progress
from rerank_eval.rerankers.listwise import ListwiseReranker, RankOutcome, WindowRecord
from rerank_eval.runs import Run
from rerank_eval.scoring.cache import ScoreCache, fingerprint_hash

logger = logging.getLogger(__name__)

RANK_SCORE_RULE = ("listwise: the final order of depth d's pass scored d, d-1, ..., 1 "
                   "(strictly decreasing); each depth is its own sliding-window pass")
COUNTS = ("ok", "wrong_format", "repetition", "out_of_range", "missing", "kept_order")

Scores = dict[str, dict[str, float]]


class CachedAnswers:
    """The score cache's window table as one reranker sees it (an ``AnswerStore``)."""

    def __init__(self, cache: ScoreCache, fp_id: int):
        self.cache, self.fp_id = cache, fp_id

    def get(self, key: bytes) -> str | None:
        return self.cache.get_answer(self.fp_id, key)

    def put(self, key: bytes, answer: str) -> None:
        self.cache.put_answer(self.fp_id, key, answer)


@dataclass
class ListwiseCounts:
    """What the windows of a pass (or of all passes) did; counts are windows."""

    windows: int = 0
    requests: int = 0  # windows sent to the model (not answered from the cache)
    from_cache: int = 0
    ok: int = 0
    wrong_format: int = 0
    repetition: int = 0
    out_of_range: int = 0
    missing: int = 0
    kept_order: int = 0
    latency_ms: list[float] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, record: WindowRecord) -> None:
        self.windows += 1
        if record.from_cache:
            self.from_cache += 1
        else:
            self.requests += 1
            if record.latency_ms is not None:
                self.latency_ms.append(record.latency_ms)
            self.input_tokens += record.input_tokens or 0
            self.output_tokens += record.output_tokens or 0
        parsed = record.parsed
        self.ok += parsed.ok
        self.wrong_format += parsed.wrong_format
        self.repetition += parsed.repetition
        self.out_of_range += parsed.out_of_range
        self.missing += parsed.missing
        self.kept_order += parsed.kept_order


@dataclass
class ListwiseResult:
    """Per-depth scores and counts of one reranker's passes."""

    scores: dict[int, Scores]
    total: ListwiseCounts
    per_depth: dict[int, ListwiseCounts]

    def info(self, reranker: ListwiseReranker, queries: int) -> dict[str, Any]:
        """The ``listwise`` entry of results.json."""
        t = self.total
        latency: dict[str, float | int] = {"windows": len(t.latency_ms)}
        if t.latency_ms:
            arr = np.asarray(t.latency_ms)
            latency.update(p50=float(np.percentile(arr, 50)),
                           p95=float(np.percentile(arr, 95)),
                           mean=float(arr.mean()), max=float(arr.max()))
        p = reranker.params
        return {
            "backend": reranker.backend_name,
            "window": p.window, "stride": p.stride, "passes": p.passes,
            "shuffle_input": p.shuffle_input,
            **{k: getattr(t, k) for k in ("windows", "requests", "from_cache", *COUNTS)},
            "input_tokens": t.input_tokens, "output_tokens": t.output_tokens,
            "window_latency_ms": latency,
            "per_depth": {str(d): {"windows": c.windows, "requests": c.requests,
                                   "from_cache": c.from_cache,
                                   "windows_per_query": reranker.windows_per_query(d),
                                   "queries": queries}
                          for d, c in self.per_depth.items()},
            "scores": RANK_SCORE_RULE,
        }


def rank_shortlist(reranker: ListwiseReranker, dataset: Dataset, shortlist: Run,
                   depths: Sequence[int], *, cache: ScoreCache | None = None) -> ListwiseResult:
    """Every query's top-d ranked by ``reranker`` for every d in ``depths`` (its own pass)."""
    store = None
    if cache is not None:
        fingerprint = reranker.fingerprint()
        fp_hash = fingerprint_hash(fingerprint)
        store = CachedAnswers(cache, cache.register(fp_hash, fingerprint))
        reranker.stats.extra["cache_fingerprint"] = fp_hash
    queries = [q for q, docs in shortlist.ranking.items() if docs]
    tasks = [(d, q) for d in depths for q in queries]
    total_windows = sum(reranker.windows_per_query(min(d, len(shortlist.ranking[q])))
                        for d, q in tasks)

    def run(task: tuple[int, str]) -> RankOutcome:
        depth, q = task
        docs = shortlist.ranking[q][:depth]
        query = dataset.queries[q]
        shown = query if len(query) <= 40 else query[:37] + "..."
        return reranker.rank(query, [dataset.corpus[d] for d in docs], store=store,
                             label=f"query {q} ({shown!r}), depth {depth}")

    scores: dict[int, Scores] = {d: {} for d in depths}
    per_depth = {d: ListwiseCounts() for d in depths}
    total = ListwiseCounts()
    t0 = time.perf_counter()
    pool = ThreadPoolExecutor(reranker.concurrency,
                              thread_name_prefix=f"{reranker.name}-listwise")
    with Progress(f"{reranker.name}: listwise windows", total_windows, unit="windows",
                  logger=logger) as bar:
        try:
            for (depth, q), outcome in zip(tasks, pool.map(run, tasks)):
                docs = shortlist.ranking[q][:depth]
                n = len(docs)
                scores[depth][q] = {docs[i]: float(n - rank)
                                    for rank, i in enumerate(outcome.order)}
                for record in outcome.windows:
                    per_depth[depth].add(record)
                    total.add(record)
                bar.update(len(outcome.windows))
        finally:  # a failed query stops the rest (queued queries are not sent)
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close(f"{reranker.name}: {total.windows:,} windows in "
                  f"{time.perf_counter() - t0:.1f} s: {total.requests:,} requests, "
                  f"{total.from_cache:,} from the cache; {total.ok:,} answers ok, "
                  f"{total.kept_order:,} kept their input order")
    return ListwiseResult(scores, total, per_depth)
