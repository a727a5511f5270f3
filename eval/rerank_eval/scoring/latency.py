"""Per-query latency and bulk throughput, measured the way they are paid in production.

Rerank latency: one query's top-d candidates go to ``reranker.score`` as one call (one request),
timed with a wall clock that includes tokenization; warm-up calls are not recorded; on CUDA the
device is synchronized before each clock read. Depths are interleaved per query (in a seeded
order) so background load on a shared machine falls on every depth alike. The reranker is
called directly, never through a score cache, and its pair counters are restored afterwards, so
latency probes never count as scored pairs.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rerank_eval.datasets import Dataset
from rerank_eval.params import Int, NonNegativeInt, Params
from rerank_eval.progress import Progress
from rerank_eval.rerankers.base import Reranker
from rerank_eval.runs import Run

logger = logging.getLogger(__name__)


class LatencyConfig(Params):
    """Per-query latency sample: ``queries`` 0 turns latency measurement off."""

    queries: NonNegativeInt = 50
    """Queries in the seeded sample timed per depth (0: no latency measurement)."""
    warmup: NonNegativeInt = 3
    """Untimed calls before the timed ones."""
    seed: Int = 0

LATENCY_RULE = ("wall clock per query (one reranker.score call with the query's top-d pairs, "
                "tokenization included, model always run: no score cache), warm-up excluded "
                "(backends that prepare per batch shape, like CUDA graphs, first score every "
                "probe untimed), "
                "depths interleaved per query, CUDA synchronized before each clock read; "
                "percentiles by linear interpolation (numpy)")
FIRST_STAGE_RULE = ("wall clock per query, one query at a time against the prebuilt index "
                    "(query tokenization included, index build excluded)")
THROUGHPUT_RULE = ("bulk scoring pass: pairs (and queries) scored by the model divided by its "
                   "wall time; tokenization included, model load excluded; time spent waiting "
                   "out failures (retries of a hosted or self-hosted server) excluded and "
                   "reported as retry_wait_s")


def _sync() -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def latency_summary(values_ms: Sequence[float]) -> dict[str, float | int | None]:
    """p50, p95, p99 and mean of per-query latencies (milliseconds), and the sample size
    (None values for an empty sample: JSON has no NaN)."""
    arr = np.asarray(values_ms, dtype=float)
    if arr.size == 0:
        return {"p50": None, "p95": None, "p99": None, "mean": None, "queries": 0}
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99),
            "mean": float(arr.mean()), "queries": int(arr.size)}


def _sample(ids: Sequence[str], cfg: LatencyConfig) -> tuple[list[str], list[str]]:
    """(warm-up queries, measured queries): a seeded sample; warm-up reuses its first ones."""
    ids = sorted(ids)
    n = min(cfg.queries, len(ids))
    sample = random.Random(cfg.seed).sample(ids, n)
    warm = [sample[i % n] for i in range(cfg.warmup)] if n else []
    return warm, sample


@dataclass
class LatencyPlan:
    """What a latency measurement times: plain data, so it can travel to a Ray worker."""

    warmup: list[str]  # query ids, not recorded
    sample: list[str]  # query ids, recorded
    candidates: dict[str, list[tuple[str, str]]]  # query id -> its top-max(depth) pairs
    depths: list[int]
    seed: int


def latency_plan(dataset: Dataset, shortlist: Run, depths: Sequence[int],
                 cfg: LatencyConfig) -> LatencyPlan | None:
    """The seeded query sample and its candidate pairs; None when latency is off."""
    if cfg.queries <= 0:
        return None
    eligible = [q for q, docs in shortlist.ranking.items() if docs]
    warm, sample = _sample(eligible, cfg)
    deepest = max(depths)
    candidates = {q: [(dataset.queries[q], dataset.corpus[d])
                      for d in shortlist.ranking[q][:deepest]] for q in {*warm, *sample}}
    return LatencyPlan(warm, sample, candidates, list(depths), cfg.seed)


def time_latency_plan(reranker: Reranker, plan: LatencyPlan
                      ) -> dict[str, dict[str, float | int | None]]:
    """``{depth: {p50, p95, p99, mean, queries, pairs_per_query}}`` in milliseconds."""
    rng = random.Random(plan.seed + 1)
    saved = copy.deepcopy(reranker.stats)
    timings: dict[int, list[float]] = {d: [] for d in plan.depths}
    pairs_seen: dict[int, list[int]] = {d: [] for d in plan.depths}
    shapes = [q for _ in range(reranker.latency_warmup_rounds()) for q in plan.sample]
    warmup = plan.warmup + shapes
    calls = (len(warmup) + len(plan.sample)) * len(plan.depths)
    bar = Progress(f"{reranker.name}: latency probes", calls, unit="calls", logger=logger)
    try:
        for phase, queries in (("warmup", warmup), ("measure", plan.sample)):
            for q in queries:
                order = list(plan.depths)
                rng.shuffle(order)
                for depth in order:
                    pairs = plan.candidates[q][:depth]
                    _sync()
                    t0 = time.perf_counter()
                    reranker.score(pairs)
                    _sync()
                    elapsed = (time.perf_counter() - t0) * 1000.0
                    if phase == "measure":
                        timings[depth].append(elapsed)
                        pairs_seen[depth].append(len(pairs))
                    bar.update()
        bar.close(f"{reranker.name}: latency measured on {len(plan.sample)} queries x "
                  f"{len(plan.depths)} depths in {bar.elapsed:.1f} s "
                  f"(after {len(warmup)} warm-up)")
    finally:
        bar.abort()  # an interrupted measurement: the bar goes, no summary line
        reranker.stats = saved
    return {str(d): {**latency_summary(timings[d]),
                     "pairs_per_query": float(np.mean(pairs_seen[d])) if pairs_seen[d] else 0.0}
            for d in plan.depths}


def measure_rerank_latency(
    reranker: Reranker, dataset: Dataset, shortlist: Run, depths: Sequence[int],
    cfg: LatencyConfig,
) -> dict[str, dict[str, float | int | None]]:
    """Latency of ``reranker`` in this process (see ``time_latency_plan``); {} when off."""
    plan = latency_plan(dataset, shortlist, depths, cfg)
    return {} if plan is None else time_latency_plan(reranker, plan)


def measure_first_stage_latency(
    search_one: Callable[[str], Any] | None, dataset: Dataset, cfg: LatencyConfig,
) -> dict[str, float | int | None] | None:
    """Per-query first-stage latency (ms) of ``search_one(query_text)``; None when the first
    stage cannot be timed per query (a precomputed run) or latency is off."""
    if search_one is None or cfg.queries <= 0:
        return None
    warm, sample = _sample(list(dataset.queries), cfg)
    values = []
    with Progress("first stage: latency probes", len(warm) + len(sample), unit="queries",
                  logger=logger) as bar:
        for q in warm:
            search_one(dataset.queries[q])
            bar.update()
        for q in sample:
            t0 = time.perf_counter()
            search_one(dataset.queries[q])
            values.append((time.perf_counter() - t0) * 1000.0)
            bar.update()
        bar.close(f"first stage: latency measured on {len(sample)} queries in "
                  f"{bar.elapsed:.1f} s (after {len(warm)} warm-up)")
    return latency_summary(values)


def throughput(pairs: int, queries: int, seconds: float, description: dict[str, Any],
               threads: int, *, retry_wait_s: float = 0.0) -> dict[str, Any]:
    """Bulk-pass throughput with the settings that produced it. ``retry_wait_s``, the wall
    time spent waiting out failures (a server restarting, 429s), is not working time: the
    rates are over ``seconds - retry_wait_s`` and the wait is reported beside them."""
    working = seconds - min(max(retry_wait_s, 0.0), seconds)
    return {
        "pairs_per_s": pairs / working if working > 0 else None,
        "queries_per_s": queries / working if working > 0 else None,
        "pairs": pairs,
        "queries": queries,
        "seconds": seconds,
        **({"retry_wait_s": retry_wait_s} if retry_wait_s > 0 else {}),
        "batch_size": description.get("batch_size"),
        "dtype": description.get("dtype"),
        "device": description.get("device"),
        "threads": threads,
    }
