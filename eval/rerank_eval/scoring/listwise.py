"""Ranking a shortlist with a listwise reranker, one sliding-window pass per depth.

A pointwise reranker's scores serve every depth (depth d keeps the top d of one scoring
pass); a listwise model's order over the top-d depends on d, so depth d is its own pass over
the first stage's top d, and each depth's requests are counted apart. The final order of a
pass becomes strictly decreasing scores (d for the first, d - 1 for the next, ..., 1), which
runs, audit, compare, gate and the depth recommendation use unchanged.

Queries are ranked ``reranker.concurrency`` at a time; a query's depths and windows run one
after the other (each window depends on the one before), so a window whose exact content
comes up again (often: where the model keeps the input order, depth 50's windows repeat
depth 100's) is answered from the cache, never sent twice at once. Every answer goes to the
score cache as it arrives (without a cache, to memory for this run).

Answer defects (``ok`` ... ``kept_order``) are counted once per distinct window answer
(``answers``), however often the same window recurs: they count what the model answered.
"""

from __future__ import annotations

import logging
import threading
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


class MemoryAnswers:
    """This run's answers only (the score cache is off): a recurring window is not re-sent."""

    def __init__(self) -> None:
        self.answers: dict[bytes, str] = {}
        self.lock = threading.Lock()

    def get(self, key: bytes) -> str | None:
        with self.lock:
            return self.answers.get(key)

    def put(self, key: bytes, answer: str) -> None:
        with self.lock:
            self.answers[key] = answer


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
    """What the windows of a pass (or of all passes) did: ``windows`` ranked, ``requests``
    sent; the defect counts are over the ``answers`` (distinct windows) seen."""

    windows: int = 0
    requests: int = 0  # windows sent to the model (not answered from the cache)
    from_cache: int = 0
    answers: int = 0
    ok: int = 0
    wrong_format: int = 0
    repetition: int = 0
    out_of_range: int = 0
    missing: int = 0
    kept_order: int = 0
    latency_ms: list[float] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, record: WindowRecord, *, new_answer: bool = True) -> None:
        self.windows += 1
        if record.from_cache:
            self.from_cache += 1
        else:
            self.requests += 1
            if record.latency_ms is not None:
                self.latency_ms.append(record.latency_ms)
            self.input_tokens += record.input_tokens or 0
            self.output_tokens += record.output_tokens or 0
        if not new_answer:
            return
        self.answers += 1
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
            **{k: getattr(t, k) for k in ("windows", "requests", "from_cache", "answers",
                                          *COUNTS)},
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
    reranker.reset_usage()
    store: CachedAnswers | MemoryAnswers = MemoryAnswers()
    if cache is not None:
        fingerprint = reranker.fingerprint()
        fp_hash = fingerprint_hash(fingerprint)
        store = CachedAnswers(cache, cache.register(fp_hash, fingerprint))
        reranker.stats.extra["cache_fingerprint"] = fp_hash
    queries = [q for q, docs in shortlist.ranking.items() if docs]
    total_windows = sum(reranker.windows_per_query(min(d, len(shortlist.ranking[q])))
                        for d in depths for q in queries)

    def run(q: str) -> list[RankOutcome]:
        """One query at every depth, in turn (its own pass per depth)."""
        query = dataset.queries[q]
        shown = query if len(query) <= 40 else query[:37] + "..."
        return [reranker.rank(query, [dataset.corpus[d] for d in shortlist.ranking[q][:depth]],
                              store=store, label=f"query {q} ({shown!r}), depth {depth}")
                for depth in depths]

    scores: dict[int, Scores] = {d: {} for d in depths}
    per_depth = {d: ListwiseCounts() for d in depths}
    total = ListwiseCounts()
    seen: set[bytes] = set()  # window answers counted so far
    t0 = time.perf_counter()
    pool = ThreadPoolExecutor(reranker.concurrency,
                              thread_name_prefix=f"{reranker.name}-listwise")
    with Progress(f"{reranker.name}: listwise windows", total_windows, unit="windows",
                  logger=logger) as bar:
        try:
            for q, outcomes in zip(queries, pool.map(run, queries)):
                for depth, outcome in zip(depths, outcomes):
                    docs = shortlist.ranking[q][:depth]
                    n = len(docs)
                    scores[depth][q] = {docs[i]: float(n - rank)
                                        for rank, i in enumerate(outcome.order)}
                    for record in outcome.windows:
                        per_depth[depth].add(record, new_answer=False)
                        total.add(record, new_answer=record.key not in seen)
                        seen.add(record.key)
                    bar.update(len(outcome.windows))
        finally:  # a failed query stops the rest (queued queries are not sent)
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close(f"{reranker.name}: {total.windows:,} windows in "
                  f"{time.perf_counter() - t0:.1f} s: {total.requests:,} requests, "
                  f"{total.from_cache:,} from the cache; {total.ok:,} of {total.answers:,} "
                  f"answers ok, {total.kept_order:,} without any identifier")
    return ListwiseResult(scores, total, per_depth)
