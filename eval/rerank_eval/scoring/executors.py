"""Where a shortlist's pairs are scored: in this process, or spread over a Ray actor pool.

Both executors score the same chunks (``plan_chunks``) and merge them in the same order, so the
choice of executor changes the wall time, never the scores. The pipeline only calls
``executor.score(reranker, dataset, shortlist)``; a new backend is one class here plus one line
in :func:`make_executor`.
"""

from __future__ import annotations

from typing import Any

import torch

from rerank_eval.benchmark.latency import LatencyPlan, time_latency_plan
from rerank_eval.config import ExecutorConfig
from rerank_eval.datasets import Dataset
from rerank_eval.errors import InputError
from rerank_eval.rerankers.base import Reranker
from rerank_eval.runs import Run
from rerank_eval.scoring.cache import ScoreCache
from rerank_eval.scoring.shortlist import PAIRS_PER_CHUNK, ProgressFn, score_shortlist

RAY_INSTALL_HELP = (
    "executor: ray needs the Ray package, which is not installed "
    "(pip install 'rerank-eval[ray]', or pip install 'ray>=2.9')"
)


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


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def make_executor(config: ExecutorConfig, *, log=print, **kwargs: Any) -> Executor:
    """The executor a config asks for; ``ray`` without Ray installed is a one-line InputError."""
    if config.kind == "local":
        return LocalExecutor(**kwargs)
    if config.kind == "ray":
        if not ray_available():
            raise InputError(RAY_INSTALL_HELP)
        from rerank_eval.scoring.ray_executor import RayExecutor

        return RayExecutor(config, log=log, **kwargs)
    raise InputError(f"executor: unknown executor {config.kind!r}")
