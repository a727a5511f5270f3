"""Where a shortlist's pairs are scored: in this process, or spread over a Ray actor pool.

Both executors score the same chunks (``plan_chunks``) and merge them in the same order, so the
choice of executor changes the wall time, never the scores. The pipeline only calls
``executor.score(reranker, dataset, shortlist)``; a new backend is one class here plus one line
in :func:`rerank_eval.scoring.make_executor`.
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import Field, model_validator

from rerank_eval.datasets import Dataset
from rerank_eval.params import (
    NonNegativeNumber,
    Params,
    PositiveInt,
    expected,
    field_error,
)
from rerank_eval.rerankers.base import Reranker
from rerank_eval.runs import Run
from rerank_eval.scoring.cache import ScoreCache
from rerank_eval.scoring.latency import LatencyPlan, time_latency_plan
from rerank_eval.scoring.shortlist import PAIRS_PER_CHUNK, ProgressFn, score_shortlist

EXECUTOR_KINDS = ("local", "ray")


class RayOptions(Params):
    """Ray actor pool options."""

    address: Annotated[str, Field(strict=True, pattern=r"\S"),
                       expected("local, auto, ray://host:port or host:port")] = "local"
    """``local`` starts Ray on this machine, ``auto`` joins the running cluster,
    ``ray://host:port`` connects a client."""
    num_cpus_per_worker: NonNegativeNumber = 1
    num_gpus_per_worker: NonNegativeNumber = 0
    workers: PositiveInt | None = None
    """Actors in the pool; none: as many as the cluster's CPUs (or GPUs) allow."""

    @model_validator(mode="after")
    def _needs_resources(self) -> RayOptions:
        if self.num_cpus_per_worker == 0 and self.num_gpus_per_worker == 0:
            raise field_error("a worker needs num_cpus_per_worker or num_gpus_per_worker > 0")
        return self


class ExecutorConfig(Params):
    """Where pairs are scored: ``local`` (this process, the default) or ``ray`` (an actor
    pool; ``ray: {address, num_cpus_per_worker, num_gpus_per_worker, workers}``).

    From Python: ``ExecutorConfig()`` (local) or ``ExecutorConfig.on_ray(workers=2)``.
    """

    shorthand_schema = {"type": "string", "enum": list(EXECUTOR_KINDS)}

    local: None = None
    """``executor: {local: null}``: the same as ``executor: local``."""
    ray: RayOptions | None = None

    @classmethod
    def on_ray(cls, **options: Any) -> ExecutorConfig:
        """A Ray pool with ``options`` (RayOptions' fields), from Python."""
        return cls(ray=RayOptions(**options))

    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if data is None or data == "local":
            return {}
        if data == "ray":
            return {"ray": {}}
        if isinstance(data, str):
            raise field_error(f"unknown executor {data!r} (use {' or '.join(EXECUTOR_KINDS)})")
        return data

    @classmethod
    def _check_raw(cls, data: dict[Any, Any]) -> dict[Any, Any]:
        if len(data) > 1:
            raise field_error(f"give exactly one of {', '.join(EXECUTOR_KINDS)}")
        if not data:
            return data
        if "local" in data:
            if data["local"] is not None:
                raise field_error("takes no options (write executor: local)", "local")
            return {}
        return {"ray": {} if data["ray"] is None else data["ray"]}

    @property
    def kind(self) -> str:
        return "local" if self.ray is None else "ray"

    @property
    def address(self) -> str:
        return (self.ray or RayOptions()).address

    @property
    def num_cpus_per_worker(self) -> float:
        return (self.ray or RayOptions()).num_cpus_per_worker

    @property
    def num_gpus_per_worker(self) -> float:
        return (self.ray or RayOptions()).num_gpus_per_worker

    @property
    def workers(self) -> int | None:
        return (self.ray or RayOptions()).workers

    def resolved(self) -> Any:
        if self.ray is None:
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
        timing = time_latency_plan(reranker, plan)
        return [{"where": "this process", "latency_ms": timing.latency_ms,
                 "conditions": timing.conditions}]

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
