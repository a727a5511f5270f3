"""Where a shortlist's pairs are scored: in this process, or spread over a Ray actor pool.

Both executors score the same chunks (``plan_chunks``) and merge them in the same order, so the
choice of executor changes the wall time, never the scores. The pipeline only calls
``executor.score(reranker, dataset, shortlist)``; a new backend is one class here plus one line
in :func:`rerank_eval.scoring.make_executor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rerank_eval.datasets import Dataset
from rerank_eval.rerankers.base import Reranker
from rerank_eval.runs import Run
from rerank_eval.scoring.cache import ScoreCache
from rerank_eval.scoring.latency import LatencyPlan, time_latency_plan
from rerank_eval.scoring.shortlist import PAIRS_PER_CHUNK, ProgressFn, score_shortlist


@dataclass
class ExecutorConfig:
    """Where pairs are scored: ``local`` (this process) or ``ray`` (an actor pool).

    ``address``: ``local`` starts a Ray instance on this machine, ``auto`` joins the running
    cluster, ``ray://host:port`` connects a client. ``workers: None`` means as many actors as the
    cluster's CPUs (or GPUs, when ``num_gpus_per_worker`` > 0) allow.
    """

    kind: str = "local"
    address: str = "local"
    num_cpus_per_worker: float = 1
    num_gpus_per_worker: float = 0
    workers: int | None = None

    def resolved(self) -> Any:
        if self.kind == "local":
            return "local"
        return {"ray": {"address": self.address, "num_cpus_per_worker": self.num_cpus_per_worker,
                        "num_gpus_per_worker": self.num_gpus_per_worker,
                        "workers": self.workers}}




class Executor:
    """Scores every (query, candidate) pair of a shortlist with a reranker."""

    kind: str = ""

    def __init__(self, *, pairs_per_chunk: int = PAIRS_PER_CHUNK) -> None:
        self.pairs_per_chunk = pairs_per_chunk
        # What the last score() call did (workers, throughput, retries), for results.json.
        self.run_info: dict[str, Any] = {}

    def score(self, reranker: Reranker, dataset: Dataset, shortlist: Run, *,
              progress: ProgressFn | None = None,
              cache: ScoreCache | None = None) -> dict[str, dict[str, float]]:
        """Model scores, query id -> doc id -> score; updates ``reranker.stats``."""
        raise NotImplementedError

    def measure_latency(self, reranker: Reranker, plan: LatencyPlan) -> list[dict[str, Any]]:
        """Per-query latency where this executor scores: here, in this process. Returns one
        ``{"where", "latency_ms", "hardware"?}`` per hardware setup measured."""
        return [{"where": "this process", "latency_ms": time_latency_plan(reranker, plan)}]

    def close(self) -> None:
        """Release workers (the local executor holds none)."""


class LocalExecutor(Executor):
    """This process, chunk after chunk: what the harness did before executors existed."""

    kind = "local"

    def score(self, reranker: Reranker, dataset: Dataset, shortlist: Run, *,
              progress: ProgressFn | None = None,
              cache: ScoreCache | None = None) -> dict[str, dict[str, float]]:
        # Scores are bit-identical only at equal intra-op thread counts (README): record it.
        self.run_info = {"kind": self.kind, "threads": torch.get_num_threads()}
        return score_shortlist(reranker, dataset, shortlist, progress=progress, cache=cache,
                               pairs_per_chunk=self.pairs_per_chunk)
