"""Score a first-stage shortlist with a reranker, and derive the reranked run at each depth.

The shortlist is scored once at the largest depth; every smaller depth reuses those scores,
so a whole depth curve costs one scoring pass. With a score cache, pairs already scored by the
same model are read back, only the misses reach the model, and each chunk's new scores are
written as soon as the chunk is done (a killed run resumes where it stopped).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rerank_eval.datasets import Dataset
from rerank_eval.progress import Progress
from rerank_eval.rerankers.base import Reranker, scores_so_far
from rerank_eval.runs import Run
from rerank_eval.scoring.cache import CachedScore, ScoreCache, fingerprint_hash, text_sha

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
Key = tuple[str, str]  # (query id, doc id)
PAIRS_PER_CHUNK = 1024


def score_shortlist(
    reranker: Reranker,
    dataset: Dataset,
    shortlist: Run,
    *,
    pairs_per_chunk: int = PAIRS_PER_CHUNK,
    progress: ProgressFn | None = None,
    cache: ScoreCache | None = None,
) -> dict[str, dict[str, float]]:
    """Model scores for every (query, candidate) of ``shortlist``, in chunks of whole queries
    of about ``pairs_per_chunk`` pairs (the unit the cache commits: a crash loses at most one).

    ``reranker.stats`` counts model calls (``pairs_scored``), cache hits (``pairs_from_cache``)
    and truncated inputs among all the shortlist's pairs, cached or not (``pairs_truncated``).
    A progress bar (pairs/s) shows while it runs and one INFO line sums it up (``progress``:
    an extra callback, ``progress(done, total)`` after each chunk).
    """
    chunks = plan_chunks(shortlist, pairs_per_chunk)
    total = sum(len(keys) for keys in chunks)
    done = 0
    scores: dict[str, dict[str, float]] = {q: {} for q in shortlist.ranking}
    view = CacheView(cache, reranker, dataset)
    with ScoringProgress(reranker, total, progress) as bar:
        for keys in chunks:
            work = view.split(keys)
            values: Sequence[float] = []
            flags = None
            if work.misses:
                # The model's own score() counts pairs_scored and pairs_truncated.
                try:
                    values = reranker.score(chunk_pairs(dataset, work.misses))
                except Exception as e:
                    view.keep_partial(work, scores_so_far(e))
                    raise
                flags = reranker.last_truncated
            view.complete(work, values, flags, scores)
            done += len(keys)
            bar(done, total)
    return scores


class ScoringProgress:
    """One scoring pass as the user sees it, whatever the executor: a bar of pairs (with
    pairs/s and ETA) while it runs, then one INFO line (pairs scored by the model, from the
    cache, time and rate) and, when inputs were cut, how many. ``callback`` (the executor's
    ``progress`` argument) gets every ``(done, total)`` too."""

    def __init__(self, reranker: Reranker, total: int, callback: ProgressFn | None = None):
        self.reranker = reranker
        self.callback = callback
        self.before = copy.copy(reranker.stats)
        self.bar = Progress(f"{reranker.name}: scoring", total, unit="pairs", level=None,
                            logger=logger)

    def __call__(self, done: int, total: int) -> None:
        self.bar(done, total)
        if self.callback is not None:
            self.callback(done, total)

    def __enter__(self) -> ScoringProgress:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.bar.abort()
            return
        seconds = self.bar.close()
        name, stats, before = self.reranker.name, self.reranker.stats, self.before
        total = self.bar.n
        scored = stats.pairs_scored - before.pairs_scored
        cached = stats.pairs_from_cache - before.pairs_from_cache
        truncated = stats.pairs_truncated - before.pairs_truncated
        rate = f" ({scored / seconds:,.1f} pairs/s)" if seconds > 0 and scored else ""
        if not cached:
            logger.info(f"{name}: scored {scored:,} pairs in {seconds:.1f} s{rate}")
        elif not scored:
            logger.info(f"{name}: {total:,} pairs from the score cache in {seconds:.1f} s")
        else:
            logger.info(f"{name}: {total:,} pairs in {seconds:.1f} s: {cached:,} from the "
                        f"score cache, {scored:,} scored{rate}")
        if truncated:
            # The engine counts cut inputs itself (tokenizers' per-sequence warning is off).
            length = self.reranker.describe().get("max_length")
            at = f"at {length} tokens" if length else "to the model's maximum length"
            logger.info(f"{name}: {truncated:,} of {total:,} pairs truncated {at}")


@dataclass
class ChunkWork:
    """One chunk as the cache splits it: cached pairs (with their scores) and the misses the
    model must score, both in the chunk's key order."""

    keys: list[Key]
    cached: dict[Key, CachedScore]
    misses: list[Key]


class CacheView:
    """The score cache as one scoring pass of one reranker sees it, shared by every executor:
    ``split`` a chunk into hits and misses before scoring, ``complete`` it with the misses'
    scores (written to the cache at once, one transaction per chunk). ``cache`` None: every
    pair is a miss and nothing is stored."""

    def __init__(self, cache: ScoreCache | None, reranker: Reranker, dataset: Dataset):
        self.cache, self.reranker, self.dataset = cache, reranker, dataset
        self._doc_sha: dict[str, bytes] = {}
        self.fp_id: int | None = None
        if cache is not None:
            fingerprint = reranker.fingerprint()
            fp_hash = fingerprint_hash(fingerprint)
            self.fp_id = cache.register(fp_hash, fingerprint)
            reranker.stats.extra["cache_fingerprint"] = fp_hash

    def split(self, keys: Sequence[Key]) -> ChunkWork:
        cached: dict[Key, CachedScore] = {}
        if self.cache is not None and self.fp_id is not None:
            cached = _lookup(self.cache, self.fp_id, self.dataset, keys, self._doc_sha)
        return ChunkWork(list(keys), cached, [k for k in keys if k not in cached])

    def keep_partial(self, work: ChunkWork, values: Sequence[float] | None) -> None:
        """A chunk whose scoring failed part-way: store the misses that did get a (finite)
        score, so a re-run asks the model only for the rest."""
        if values is None or self.cache is None or self.fp_id is None:
            return
        dataset = self.dataset
        got = [(k, float(v) + 0.0) for k, v in zip(work.misses, values, strict=True)
               if math.isfinite(v)]
        if got:
            self.cache.put(self.fp_id, [
                (text_sha(dataset.queries[q]), _doc_sha(dataset, d, self._doc_sha), v, None)
                for (q, d), v in got])
            logger.info(f"{self.reranker.name}: kept {len(got):,} scores of the failed chunk "
                        "in the score cache")

    def complete(self, work: ChunkWork, values: Sequence[float], flags: Sequence[bool] | None,
                 scores: dict[str, dict[str, float]]) -> None:
        """Store the misses' fresh ``values`` (with their truncation ``flags``), merge the whole
        chunk into ``scores`` in key order, and count the cache hits (and their truncations)."""
        # + 0.0 turns -0.0 into 0.0, the value the cache gives back: cached and fresh runs then
        # agree to the bit.
        fresh = {k: float(v) + 0.0 for k, v in zip(work.misses, values, strict=True)}
        if self.cache is not None and self.fp_id is not None and fresh:
            dataset = self.dataset
            self.cache.put(self.fp_id, [
                (text_sha(dataset.queries[q]), _doc_sha(dataset, d, self._doc_sha), v,
                 None if flags is None else bool(flags[i]))
                for i, ((q, d), v) in enumerate(fresh.items())])
        for q, d in work.keys:
            hit = work.cached.get((q, d))
            scores.setdefault(q, {})[d] = fresh[(q, d)] if hit is None else hit.score
        stats = self.reranker.stats
        stats.pairs_from_cache += len(work.cached)
        stats.pairs_truncated += sum(1 for hit in work.cached.values() if hit.truncated)


def _chunks(query_ids: Sequence[str], shortlist: Run, target: int) -> list[list[str]]:
    """Consecutive queries grouped until a group holds at least ``target`` pairs."""
    chunks: list[list[str]] = [[]]
    size = 0
    for q in query_ids:
        if size >= target:
            chunks.append([])
            size = 0
        chunks[-1].append(q)
        size += len(shortlist.ranking[q])
    return [c for c in chunks if c]


def plan_chunks(shortlist: Run, pairs_per_chunk: int = PAIRS_PER_CHUNK) -> list[list[Key]]:
    """The (query, doc) keys of the shortlist in the chunks score_shortlist scores. Every
    executor scores exactly these chunks, so a chunk's batches (and therefore its scores, to
    the bit) do not depend on where it runs."""
    query_ids = sorted(q for q, docs in shortlist.ranking.items() if docs)
    return [[(q, d) for q in chunk for d in shortlist.ranking[q]]
            for chunk in _chunks(query_ids, shortlist, pairs_per_chunk)]


def chunk_pairs(dataset: Dataset, keys: Sequence[Key]) -> list[tuple[str, str]]:
    """The (query text, passage text) pairs of a chunk's keys."""
    return [(dataset.queries[q], dataset.corpus[d]) for q, d in keys]


def _doc_sha(dataset: Dataset, doc_id: str, memo: dict[str, bytes]) -> bytes:
    if doc_id not in memo:
        memo[doc_id] = text_sha(dataset.corpus[doc_id])
    return memo[doc_id]


def _lookup(cache: ScoreCache, fp_id: int, dataset: Dataset, keys: Sequence[Key],
            doc_sha: dict[str, bytes]) -> dict[Key, CachedScore]:
    """Cached scores of a chunk's (query, doc) pairs, keyed by ids (one query per lookup)."""
    by_query: dict[str, list[str]] = {}
    for q, d in keys:
        by_query.setdefault(q, []).append(d)
    found: dict[Key, CachedScore] = {}
    for q, docs in by_query.items():
        by_sha = {_doc_sha(dataset, d, doc_sha): d for d in docs}
        hits = cache.lookup(fp_id, text_sha(dataset.queries[q]), by_sha)
        for d in docs:
            hit = hits.get(doc_sha[d])
            if hit is not None:
                found[(q, d)] = hit
    return found
