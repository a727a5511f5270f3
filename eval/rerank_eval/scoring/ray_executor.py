"""Scoring on Ray: a pool of actors, each building the reranker once, scoring query chunks.

The driver plans the same chunks the local executor scores (``plan_chunks``) and splits each
into score-cache hits and misses with the same ``CacheView``; only the misses of a chunk travel
to an actor (two chunks in flight per actor, so a worker never waits for its next chunk). Each
answer is written to the cache as soon as it arrives and merged into the score map, whose key
order is fixed by the shortlist: results are independent of which worker scored what and of the
order answers arrive. When an actor dies (pre-empted node, OOM, ``ray.kill``) its chunks in
flight go back to the queue and a fresh actor takes its slot, so a lost worker (or a killed
driver) costs only the chunks in flight. A chunk that fails ``max_attempts`` times stops the run.

This module imports Ray; ``rerank_eval.scoring.make_executor`` loads it only when the config
asks for it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray.exceptions import RayActorError, RayTaskError

import rerank_eval
from rerank_eval.datasets import Dataset
from rerank_eval.errors import InputError
from rerank_eval.hardware import hardware_fingerprint
from rerank_eval.rerankers.base import Reranker, RerankerParams
from rerank_eval.runs import Run
from rerank_eval.scoring.cache import ScoreCache
from rerank_eval.scoring.executors import Executor, ExecutorConfig
from rerank_eval.scoring.latency import LatencyPlan, LatencyTiming, time_latency_plan
from rerank_eval.scoring.shortlist import (
    PAIRS_PER_CHUNK,
    CacheView,
    ProgressFn,
    ScoringProgress,
    chunk_pairs,
    plan_chunks,
)

logger = logging.getLogger(__name__)

PACKAGE_DIR = str(Path(rerank_eval.__file__).resolve().parent)
IN_FLIGHT_PER_WORKER = 2
MAX_ATTEMPTS = 3
WAIT_NOTICE_S = 120.0  # say so when no worker can start (too few CPUs/GPUs)


class ScoringWorker:
    """One Ray actor: builds the reranker from its config once, then scores chunks."""

    def __init__(self, name: str, kind: str, params: RerankerParams, base_dir: str):
        from rerank_eval.rerankers import build_reranker

        # Tokenize on this worker's CPUs only (the Rust pool reads RAYON_NUM_THREADS once, at
        # its first use, which is after this): workers sharing a node do not oversubscribe it.
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
        self.threads = max(1, int(cpus or 1))
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
        os.environ.setdefault("RAYON_NUM_THREADS", str(self.threads))
        # Intra-op threads = the CPUs Ray assigned, set here rather than left to Ray's
        # OMP_NUM_THREADS: CPU kernels reduce in a thread-count-dependent order, so scores are
        # bit-identical only at equal thread counts (README, "Reproducibility"); each chunk's
        # answer carries the count it was computed with.
        torch.set_num_threads(self.threads)
        self.reranker = build_reranker(name, kind, params, base_dir=Path(base_dir))
        self.host = socket.gethostname()
        # Load the model now, so ready() means "can score" and load errors surface here.
        self.reranker.describe()

    def ready(self) -> str:
        return self.host

    def hardware(self) -> dict[str, Any]:
        """This worker's hardware fingerprint (its id groups workers for latency), and host."""
        return {**hardware_fingerprint(), "host": self.host}

    def time_latency(self, plan: LatencyPlan) -> LatencyTiming:
        """Per-query latency of this worker's reranker on ``plan`` (single requests)."""
        return time_latency_plan(self.reranker, plan)

    def score(self, pairs: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray | None, int,
                                                           float, str, int]:
        """Scores in input order, which pairs were truncated (None if the backend cannot say),
        how many, seconds spent, this worker's host and its intra-op thread count."""
        t0 = time.perf_counter()
        before = self.reranker.stats.pairs_truncated
        values = np.asarray(self.reranker.score(pairs), dtype=np.float64)
        truncated = self.reranker.stats.pairs_truncated - before
        flags = self.reranker.last_truncated
        flags = None if flags is None else np.asarray(flags, dtype=bool)
        return values, flags, truncated, time.perf_counter() - t0, self.host, self.threads


class _Pass:
    """The driver's bookkeeping of one scoring pass over ``n_workers`` worker slots."""

    def __init__(self, todo: list[int], n_workers: int):
        self.n_workers = n_workers
        self.queue = deque(todo)
        self.attempts = dict.fromkeys(todo, 0)
        self.in_flight: dict[Any, tuple[int, int, Any]] = {}  # ref -> (chunk, slot, actor)
        self.load = [0] * n_workers
        self.worker_failures = 0
        self.per_worker: list[dict[str, Any]] = [
            {"worker": i, "host": None, "threads": None, "chunks": 0, "pairs": 0, "busy_s": 0.0}
            for i in range(n_workers)]


class RayExecutor(Executor):
    """Scores shortlists on a pool of Ray actors (see the module docstring)."""

    kind = "ray"

    def __init__(self, config: ExecutorConfig, *, max_attempts: int = MAX_ATTEMPTS,
                 pairs_per_chunk: int = PAIRS_PER_CHUNK):
        super().__init__(pairs_per_chunk=pairs_per_chunk)
        self.config = config
        self.max_attempts = max_attempts
        self.actors: list[Any] = []  # live actor handles, one per slot (tests kill them)
        self._pool_key: tuple | None = None  # the reranker the pool was built for
        self._ready: list[bool] = []  # per slot: its actor has loaded the model
        self._starting: dict[Any, tuple[int, Any]] = {}  # ready() ref -> (slot, actor)
        self._owns_ray = False
        self._actor_env: dict[str, Any] | None = None
        if not ray.is_initialized():
            self._connect()
        else:
            # Ray started by the caller (a notebook, the tests): on this machine, point the
            # workers at the driver's copy of the package. On a cluster, pass
            # runtime_env={"py_modules": [...]} to ray.init or install rerank-eval on the nodes.
            path = os.pathsep.join(p for p in (str(Path(PACKAGE_DIR).parent),
                                               os.environ.get("PYTHONPATH")) if p)
            self._actor_env = {"env_vars": {"PYTHONPATH": path}}

    def _connect(self) -> None:
        address = self.config.address
        # ray.init replaces the driver's SIGTERM handler with one that aborts the process;
        # the host program's handler (the CLI's: stop like Ctrl-C, keep finished work) stays.
        sigterm = signal.getsignal(signal.SIGTERM)
        # Ray's notices at start-up ("Token authentication is enabled for this Ray cluster...")
        # are held back and summed up in our one line below.
        notices = _Notices()
        notice_logger = logging.getLogger(RAY_AUTH_LOGGER)
        notice_logger.addFilter(notices)
        try:
            # Workers import the driver's copy of this package (shipped through Ray's object
            # store), not whatever version a worker machine has installed, or none.
            ray.init(address=None if address == "local" else address,
                     runtime_env={"py_modules": [PACKAGE_DIR]}, include_dashboard=False,
                     configure_logging=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise InputError(f"executor.ray.address: cannot start or reach Ray at "
                             f"{address!r}: {reason}") from None
        finally:
            notice_logger.removeFilter(notices)
            if threading.current_thread() is threading.main_thread() and sigterm is not None:
                signal.signal(signal.SIGTERM, sigterm)
        self._owns_ray = True
        auth = ""
        if any(m.startswith("Token authentication is enabled") for m in notices.messages):
            auth = " (token authentication on; RAY_AUTH_MODE=disabled turns it off)"
        elif any(m.startswith("Token authentication is disabled") for m in notices.messages):
            auth = " (token authentication off)"
        what = ("started a local Ray instance" if address == "local"
                else f"connected to Ray at {address}")
        resources = ray.cluster_resources()
        logger.info(f"executor.ray: {what}{auth}: {resources.get('CPU', 0):g} CPUs, "
                    f"{resources.get('GPU', 0):g} GPUs")
        for message in notices.messages:
            logger.debug(f"executor.ray: Ray said: {message}")

    def _pool_size(self, chunks: int) -> int:
        if self.config.workers is not None:
            wanted = self.config.workers
        else:
            resources = ray.cluster_resources()
            if self.config.num_gpus_per_worker > 0:
                wanted = int(resources.get("GPU", 0) // self.config.num_gpus_per_worker)
            else:
                wanted = int(resources.get("CPU", 1) // self.config.num_cpus_per_worker)
        return max(1, min(wanted, chunks))

    def _new_actor(self, reranker: Reranker):
        cls = ray.remote(ScoringWorker).options(
            num_cpus=self.config.num_cpus_per_worker, num_gpus=self.config.num_gpus_per_worker,
            max_restarts=0, max_task_retries=0, runtime_env=self._actor_env)
        return cls.remote(reranker.name, reranker.kind, reranker.params,
                          str(reranker.base_dir))

    def score(self, reranker: Reranker, dataset: Dataset, shortlist: Run, *,
              progress: ProgressFn | None = None,
              cache: ScoreCache | None = None) -> dict[str, dict[str, float]]:
        """The driver splits each chunk into cache hits and misses (the same ``CacheView`` as
        the local executor), sends only the misses to workers, and stores each chunk's fresh
        scores in the cache as its answer arrives."""
        chunks = plan_chunks(shortlist, self.pairs_per_chunk)
        scores: dict[str, dict[str, float]] = {q: {} for q in shortlist.ranking}
        view = CacheView(cache, reranker, dataset)
        works = [view.split(keys) for keys in chunks]
        total, done = sum(len(keys) for keys in chunks), 0
        with ScoringProgress(reranker, total, progress) as bar:
            todo = []  # chunks with misses, in chunk order
            for i, work in enumerate(works):
                if work.misses:
                    todo.append(i)
                else:  # all cached: complete it here, no worker needed
                    view.complete(work, [], None, scores)
                    work.cached.clear()
                    done += len(work.keys)
                    bar(done, total)
            self.run_info = {"kind": self.kind, "address": self.config.address, "workers": 0,
                             "chunks_scored": len(todo),
                             "chunks_from_cache": len(chunks) - len(todo),
                             "pool": None, "retried_chunks": 0, "replaced_workers": 0,
                             "per_worker": []}
            if not todo:
                return scores

            def finished(i: int, values: np.ndarray, flags: np.ndarray | None,
                         truncated: int) -> None:
                nonlocal done
                work = works[i]
                view.complete(work, values, flags, scores)  # cached at once: a crash loses none
                work.cached.clear()  # merged: free the hits (a pass can hold millions)
                reranker.stats.pairs_scored += len(work.misses)
                reranker.stats.pairs_truncated += truncated
                done += len(work.keys)
                bar(done, total)

            try:
                per_worker = self._score_chunks(
                    reranker, todo, lambda i: chunk_pairs(dataset, works[i].misses),
                    self._pool_size(len(todo)), finished)
            except BaseException:
                self._release()  # a failed run leaves no workers behind
                raise
            for stats in per_worker:
                stats["pairs_per_s"] = (stats["pairs"] / stats["busy_s"] if stats["busy_s"]
                                        else None)
            self.run_info.update(workers=len(per_worker), per_worker=per_worker)
        return scores

    def _score_chunks(self, reranker: Reranker, todo: list[int],
                      pairs_of: Callable[[int], list[tuple[str, str]]], n_workers: int,
                      finished: Callable[[int, np.ndarray, np.ndarray | None, int], None]
                      ) -> list[dict[str, Any]]:
        """Score chunks ``todo`` (``pairs_of(i)``: the pairs to send), calling ``finished`` as
        each answer arrives; returns per-worker throughput.

        Chunks go only to workers that have started (loaded the model); a worker the cluster
        cannot place yet (autoscaling, busy GPUs) joins when it starts.
        """
        started = self._ensure_pool(reranker, n_workers)
        self.run_info["pool"] = "started" if started else "reused"
        n_workers = len(self.actors)  # a reused pool may be larger than this run needs
        state = _Pass(todo, n_workers)
        while state.queue or state.in_flight:
            self._dispatch(state, pairs_of)
            ready, _ = ray.wait(list(state.in_flight) + list(self._starting), num_returns=1,
                                timeout=WAIT_NOTICE_S)
            if not ready:
                if not any(self._ready):
                    logger.warning(
                        f"executor.ray: no worker has started after {WAIT_NOTICE_S:.0f} s "
                        f"({n_workers} asked, each {self.config.num_cpus_per_worker} CPU, "
                        f"{self.config.num_gpus_per_worker} GPU); cluster has "
                        f"{ray.available_resources()}")
                continue
            if ready[0] in self._starting:  # a worker finished loading its model, or died
                self._worker_started(ready[0], state, reranker)
            else:
                self._answered(ready[0], state, reranker, finished)
        return state.per_worker

    def _dispatch(self, state: _Pass, pairs_of: Callable[[int], list[tuple[str, str]]]
                  ) -> None:
        """Queued chunks to started workers, up to IN_FLIGHT_PER_WORKER each."""
        for slot in range(state.n_workers):
            while (state.queue and self._ready[slot]
                   and state.load[slot] < IN_FLIGHT_PER_WORKER):
                i = state.queue.popleft()
                state.attempts[i] += 1
                actor = self.actors[slot]
                state.in_flight[actor.score.remote(pairs_of(i))] = (i, slot, actor)
                state.load[slot] += 1

    def _worker_started(self, ref: Any, state: _Pass, reranker: Reranker) -> None:
        """A starting worker answered: it takes chunks from now on, or (it died loading the
        model) it is replaced, until workers have failed too often."""
        slot, actor = self._starting.pop(ref)
        try:
            ray.get(ref)
            self._ready[slot] = self.actors[slot] is actor
        except RayActorError as e:
            state.worker_failures += 1
            if state.worker_failures >= self.max_attempts * state.n_workers:
                raise RuntimeError(f"executor.ray: workers keep failing to start; "
                                   f"last error: {e}") from e
            self._lost_worker(slot, actor, reranker)

    def _answered(self, ref: Any, state: _Pass, reranker: Reranker,
                  finished: Callable[[int, np.ndarray, np.ndarray | None, int], None]) -> None:
        """A chunk's answer: its scores to ``finished``; a lost worker's chunk back to the
        queue (until it has failed ``max_attempts`` times); the reranker's error raised."""
        i, slot, actor = state.in_flight.pop(ref)
        state.load[slot] -= 1
        try:
            values, flags, truncated, busy_s, host, threads = ray.get(ref)
        except RayTaskError as e:  # the reranker raised: a real error, not a lost worker
            cause = getattr(e, "cause", None)
            if isinstance(cause, InputError):
                raise InputError(str(cause)) from None
            raise
        except RayActorError as e:  # the worker died: its chunk goes back to the queue
            self._lost_worker(slot, actor, reranker)
            if state.attempts[i] >= self.max_attempts:
                raise RuntimeError(f"executor.ray: chunk {i} failed on {state.attempts[i]} "
                                   f"workers; last error: {e}") from e
            self.run_info["retried_chunks"] += 1
            state.queue.appendleft(i)
            return
        stats = state.per_worker[slot]
        stats.update(host=host, threads=threads, chunks=stats["chunks"] + 1,
                     pairs=stats["pairs"] + len(values), busy_s=stats["busy_s"] + busy_s)
        finished(i, values, flags, truncated)

    def measure_latency(self, reranker: Reranker, plan: LatencyPlan) -> list[dict[str, Any]]:
        """Latency measured on one worker per hardware id, one plan at a time (so the workers
        measured do not share a GPU with each other's probes). Uses the pool that scored (or
        starts one worker if every pair came from the cache)."""
        same = _pool_key(reranker) == self._pool_key
        self._ensure_pool(reranker, max(1, len(self.actors)) if same else 1)
        by_id: dict[str, tuple[Any, dict[str, Any]]] = {}
        for actor in list(self.actors):
            try:
                hw = ray.get(actor.hardware.remote())
            except RayActorError:
                continue  # a dead worker is replaced when the pool next scores
            by_id.setdefault(hw["id"], (actor, hw))
        if not by_id:
            raise RuntimeError("executor.ray: no live worker to measure latency on")
        measured = []
        for actor, hw in by_id.values():
            where = f"ray worker on {hw['host']}"
            timing = ray.get(actor.time_latency.remote(plan))
            measured.append({"where": where, "hardware": hw, "latency_ms": timing.latency_ms,
                             "conditions": timing.conditions})
        return measured

    def _start(self, slot: int, reranker: Reranker) -> None:
        """A fresh actor in ``slot``; it takes chunks once it reports ready."""
        actor = self._new_actor(reranker)
        self.actors[slot] = actor
        self._ready[slot] = False
        self._starting[actor.ready.remote()] = (slot, actor)

    def _lost_worker(self, slot: int, actor: Any, reranker: Reranker) -> None:
        """Replace a dead actor once (its other chunks in flight fail against the old handle)."""
        if self.actors[slot] is not actor:
            return
        ray.kill(actor, no_restart=True)
        self._start(slot, reranker)
        self.run_info["replaced_workers"] += 1
        logger.warning(f"executor.ray: worker {slot} lost; its chunks go to other workers")

    def _ensure_pool(self, reranker: Reranker, n_workers: int) -> bool:
        """Reuse the pool when the same reranker scores again (another dataset of a sweep, a
        partly cached pass needing fewer workers); otherwise start ``n_workers`` fresh actors,
        each loading the model once. True when it started a new pool."""
        key = _pool_key(reranker)
        if key != self._pool_key or len(self.actors) < n_workers:
            self._release()
            self.actors = [None] * n_workers
            self._ready = [False] * n_workers
            for slot in range(n_workers):
                self._start(slot, reranker)
            self._pool_key = key
            return True
        return False

    def _release(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors, self._ready, self._starting = [], [], {}
        self._pool_key = None

    def close(self) -> None:
        self._release()
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False


RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


class _Notices(logging.Filter):
    """Holds a logger's records back, keeping their messages."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.messages.append(record.getMessage())
        return False


def _pool_key(reranker: Reranker) -> tuple:
    """What a pool's actors were built from: the same key means the pool can be reused."""
    return (reranker.name, reranker.kind, type(reranker.params).__name__,
            reranker.params.model_dump_json(), str(reranker.base_dir))
