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
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np

from rerank_eval.datasets import Dataset
from rerank_eval.params import (
    Int,
    NonNegativeInt,
    NonNegativeNumber,
    Params,
    PositiveInt,
    check_before,
    is_non_empty_list,
)
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
    depths: Annotated[list[PositiveInt] | None, check_before(
        lambda v: v is None or is_non_empty_list(v),
        "expected a non-empty list of rerank depths, e.g. [10, 50]")] = None
    """Time only these depths (each one of ``depths``; default: every depth)."""
    repeats: PositiveInt = 5
    """Times one probe is timed again to measure the spread of repeated timings."""
    max_spread: NonNegativeNumber = 0.5
    """Above this spread ((max - min) / median of the repeats) latency is flagged unreliable."""

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
    repeats: int = 5
    max_spread: float = 0.5
    # With long_docs windows: per query, per depth, how many of ``candidates`` (window pairs)
    # the top-d documents make. None: one pair per document.
    cuts: dict[str, dict[int, int]] | None = None

    def pairs(self, query: str, depth: int) -> list[tuple[str, str]]:
        """The pairs one call at ``depth`` scores for ``query``."""
        n = depth if self.cuts is None else self.cuts[query][depth]
        return self.candidates[query][:n]


@dataclass
class LatencyTiming:
    """What one latency measurement gives: per depth ``{p50, p95, p99, mean, queries,
    pairs_per_query}`` (ms) and the conditions it ran under (see :func:`machine_conditions`),
    with ``reliable`` False and the reasons when the figures should not be trusted."""

    latency_ms: dict[str, dict[str, float | int | None]]
    conditions: dict[str, Any] = field(default_factory=dict)


def busy_cores(samples: int = 10, interval_s: float = 0.1) -> float | None:
    """Mean number of runnable tasks other than this one over ``samples`` reads of
    /proc/loadavg (None where it does not exist). Why not the load average alone: right after
    the bulk pass it still counts this run's own scoring threads for a minute."""
    values = []
    for i in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return None
        values.append(max(0, running - 1))  # this thread, reading the file, is runnable
        if i + 1 < samples:
            time.sleep(interval_s)
    return float(np.mean(values))


def machine_conditions(busy: float | None, load_avg_1m: float | None, cores: int,
                       repeat_ms: Sequence[float], max_spread: float) -> dict[str, Any]:
    """Whether latency figures can be trusted: unreliable when other tasks keep more than
    half the cores busy before timing (``busy``, else the 1-minute load average), or when one
    probe timed ``len(repeat_ms)`` times spreads ((max - min) / median) over ``max_spread``."""
    reasons = []
    load = busy if busy is not None else load_avg_1m
    what = "runnable tasks of other processes" if busy is not None else "1-minute load average"
    if load is not None and load > cores / 2:
        reasons.append(f"the machine was loaded before timing: {what} {load:.1f} on {cores} "
                       f"cores (more than half)")
    spread = None
    if len(repeat_ms) >= 2:
        arr = np.asarray(repeat_ms, dtype=float)
        median = float(np.median(arr))
        spread = float((arr.max() - arr.min()) / median) if median > 0 else 0.0
        if spread > max_spread:
            reasons.append(f"one probe timed {len(arr)} times spread {spread:.0%} "
                           f"({arr.min():.1f}-{arr.max():.1f} ms; threshold {max_spread:.0%})")
    return {"load_avg_1m": load_avg_1m, "busy_cores_before": busy, "cores": cores,
            "probe_spread": spread, "reliable": not reasons, "unreliable_reasons": reasons}


def latency_plan(dataset: Dataset, shortlist: Run, depths: Sequence[int],
                 cfg: LatencyConfig, windows: Mapping[str, list[str]] | None = None
                 ) -> LatencyPlan | None:
    """The seeded query sample and its candidate pairs; None when latency is off.
    ``windows`` (doc id -> window texts, with long_docs) replaces each document by its
    windows, so a call at depth d scores the top-d documents' windows."""
    if cfg.queries <= 0:
        return None
    eligible = [q for q, docs in shortlist.ranking.items() if docs]
    warm, sample = _sample(eligible, cfg)
    timed = [d for d in depths if cfg.depths is None or d in cfg.depths]
    deepest = max(timed)
    queries = {*warm, *sample}
    if windows is None:
        candidates = {q: [(dataset.queries[q], dataset.corpus[d])
                          for d in shortlist.ranking[q][:deepest]] for q in queries}
        return LatencyPlan(warm, sample, candidates, timed, cfg.seed, repeats=cfg.repeats,
                           max_spread=cfg.max_spread)
    candidates, cuts = {}, {}
    for q in queries:
        docs = shortlist.ranking[q][:deepest]
        candidates[q] = [(dataset.queries[q], w) for d in docs for w in windows[d]]
        cuts[q] = {depth: sum(len(windows[d]) for d in docs[:depth]) for depth in timed}
    return LatencyPlan(warm, sample, candidates, timed, cfg.seed, repeats=cfg.repeats,
                       max_spread=cfg.max_spread, cuts=cuts)


def time_latency_plan(reranker: Reranker, plan: LatencyPlan) -> LatencyTiming:
    """Per depth ``{p50, p95, p99, mean, queries, pairs_per_query}`` in milliseconds, and the
    machine's conditions: its load just before timing and the spread of one probe (the first
    sampled query at the deepest depth) timed ``plan.repeats`` times after the warm-up."""
    started = time.perf_counter()
    busy = busy_cores()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rng = random.Random(plan.seed + 1)
    saved = copy.deepcopy(reranker.stats)
    timings: dict[int, list[float]] = {d: [] for d in plan.depths}
    pairs_seen: dict[int, list[int]] = {d: [] for d in plan.depths}
    shapes = [q for _ in range(reranker.latency_warmup_rounds()) for q in plan.sample]
    warmup = plan.warmup + shapes
    repeat = plan.sample[:1] * plan.repeats if plan.sample else []
    repeat_ms: list[float] = []
    calls = (len(warmup) + len(plan.sample)) * len(plan.depths) + len(repeat)
    bar = Progress(f"{reranker.name}: latency probes", calls, unit="calls", logger=logger)
    try:
        for phase, queries in (("warmup", warmup), ("repeat", repeat),
                               ("measure", plan.sample)):
            if phase == "repeat":
                for q in queries:
                    repeat_ms.append(_time_call(reranker, plan.pairs(q, max(plan.depths))))
                    bar.update()
                continue
            for q in queries:
                order = list(plan.depths)
                rng.shuffle(order)
                for depth in order:
                    pairs = plan.pairs(q, depth)
                    elapsed = _time_call(reranker, pairs)
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
    conditions = machine_conditions(busy, load, os.cpu_count() or 1, repeat_ms,
                                    plan.max_spread)
    conditions["seconds"] = time.perf_counter() - started
    for reason in conditions["unreliable_reasons"]:
        # INFO, not WARNING: a busy machine is not a fault of the run; the report flags it.
        logger.info(f"{reranker.name}: latency figures are unreliable: {reason}")
    return LatencyTiming(
        {str(d): {**latency_summary(timings[d]),
                  "pairs_per_query": float(np.mean(pairs_seen[d])) if pairs_seen[d] else 0.0}
         for d in plan.depths}, conditions)


def _time_call(reranker: Reranker, pairs: list[tuple[str, str]]) -> float:
    """One scoring call's wall time in milliseconds (CUDA synchronized around it)."""
    _sync()
    t0 = time.perf_counter()
    reranker.score(pairs)
    _sync()
    return (time.perf_counter() - t0) * 1000.0


def measure_rerank_latency(
    reranker: Reranker, dataset: Dataset, shortlist: Run, depths: Sequence[int],
    cfg: LatencyConfig,
) -> dict[str, dict[str, float | int | None]]:
    """Latency of ``reranker`` in this process (see ``time_latency_plan``); {} when off."""
    plan = latency_plan(dataset, shortlist, depths, cfg)
    return {} if plan is None else time_latency_plan(reranker, plan).latency_ms


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
