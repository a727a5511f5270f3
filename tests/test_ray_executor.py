"""Scoring on a real local Ray instance gives the local executor's results, to the bit at the
same intra-op thread count, even when a worker is killed mid-run, and reads and fills the score
cache exactly as local does; at other thread counts, within the dtype's tolerance.
Skipped when Ray is not installed (pip install 'rerank-eval[ray]').
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from rerank_eval.config import ExecutorConfig, parse_config
from rerank_eval.datasets import load_dataset
from rerank_eval.first_stage import FIRST_STAGES
from rerank_eval.models import agreement_tolerance
from rerank_eval.rerankers import build_reranker
from rerank_eval.rerankers.base import ScoringStats
from rerank_eval.runner import run_experiment
from rerank_eval.runs import Run
from rerank_eval.scoring.cache import ScoreCache, text_sha
from rerank_eval.scoring.executors import LocalExecutor
from rerank_eval.scoring.shortlist import CacheView

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'rerank-eval[ray]')")

from rerank_eval.scoring.ray_executor import RayExecutor  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    """A real Ray instance on this machine (2 CPUs), shared by this module's tests."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def scifact_shortlist(scifact_dir):
    """10 SciFact test queries, BM25 top-10: 100 pairs."""
    dataset = load_dataset("beir", str(scifact_dir), split="test", base_dir=Path.cwd())
    dataset = dataset.sample_queries(10, 0)
    run = FIRST_STAGES["bm25"]({}, base_dir=Path.cwd()).retrieve(dataset, 10)
    return dataset, run


@pytest.fixture(scope="module")
def ray_executor(local_ray):
    """Two workers on half a CPU each, one query per chunk (10 chunks); the pool is reused
    across tests and leaves a CPU for the pipeline test's worker."""
    executor = RayExecutor(ExecutorConfig.on_ray(workers=2, num_cpus_per_worker=0.5),
                           pairs_per_chunk=1)
    yield executor
    executor.close()


WORKER_THREADS = 1  # half a CPU each: a worker computes with one intra-op thread


def _reranker(model: Path, dtype: str = "auto"):
    return build_reranker("ce", "cross-encoder",
                          {"model": str(model), "max_length": 128, "dtype": dtype},
                          base_dir=Path.cwd())


@contextmanager
def torch_threads(n: int):
    """This process computes with ``n`` intra-op threads inside the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def local_scores(scifact_shortlist, scifact_ce):
    """What the local executor gives on the same chunks at the workers' thread count: the
    reference (bit identity holds at equal thread counts; see the contract test below)."""
    dataset, run = scifact_shortlist
    reranker = _reranker(scifact_ce)
    with torch_threads(WORKER_THREADS):
        executor = LocalExecutor(pairs_per_chunk=1)
        scores = executor.score(reranker, dataset, run)
    assert executor.run_info["threads"] == WORKER_THREADS
    return scores, reranker.stats


def test_ray_scores_equal_local_scores_on_scifact(ray_executor, scifact_shortlist, scifact_ce,
                                                  local_scores):
    dataset, run = scifact_shortlist
    expected, local_stats = local_scores
    reranker = _reranker(scifact_ce)
    executor = ray_executor
    scores = executor.score(reranker, dataset, run)

    assert scores == expected  # every score, bit for bit, and the same key order
    assert [list(s) for s in scores.values()] == [list(s) for s in expected.values()]
    assert reranker.stats.pairs_scored == local_stats.pairs_scored == 100
    assert reranker.stats.pairs_truncated == local_stats.pairs_truncated
    info = executor.run_info
    assert info["workers"] == 2 and info["retried_chunks"] == 0
    assert all(w["threads"] == WORKER_THREADS for w in info["per_worker"])  # recorded
    assert sum(w["pairs"] for w in info["per_worker"]) == 100
    assert all(w["chunks"] > 0 for w in info["per_worker"])  # both workers took chunks


def test_killing_a_worker_mid_run_still_gives_identical_scores(ray_executor, scifact_shortlist,
                                                               scifact_ce, local_scores):
    dataset, run = scifact_shortlist
    expected, _ = local_scores
    executor = ray_executor
    killed = []

    def kill_first_worker(done: int, total: int) -> None:
        if not killed:  # after the first chunk lands, while others are in flight
            killed.append(executor.actors[0])
            ray.kill(executor.actors[0], no_restart=True)

    reranker = _reranker(scifact_ce)
    scores = executor.score(reranker, dataset, run, progress=kill_first_worker)

    assert killed and scores == expected
    assert executor.run_info["replaced_workers"] >= 1
    assert executor.run_info["retried_chunks"] >= 1  # the dead worker's chunks were rescored
    assert reranker.stats.pairs_scored == 100  # each pair counted once, retries or not
    assert killed[0] not in executor.actors and len(executor.actors) == 2  # a fresh worker


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_at_another_thread_count_scores_agree_within_the_dtype_tolerance(
        ray_executor, scifact_shortlist, scifact_ce, dtype):
    """The reproducibility contract's second half: the local process (all cores) and the
    one-thread workers reduce in different orders, so their scores may differ in the last
    bits, never by more than ``agreement_tolerance`` of the compute dtype."""
    dataset, run = scifact_shortlist
    local = LocalExecutor(pairs_per_chunk=1)
    expected = local.score(_reranker(scifact_ce, dtype), dataset, run)
    scores = ray_executor.score(_reranker(scifact_ce, dtype), dataset, run)
    assert local.run_info["threads"] == torch.get_num_threads()
    assert all(w["threads"] == WORKER_THREADS for w in ray_executor.run_info["per_worker"])
    tolerance = agreement_tolerance(getattr(torch, dtype))
    for q, docs in expected.items():
        assert list(scores[q]) == list(docs)
        for d, s in docs.items():
            assert abs(scores[q][d] - s) <= tolerance * max(1.0, abs(s)), (q, d)


def test_pipeline_with_executor_ray_reports_local_metrics(local_ray, tiny_cross_encoder,
                                                         tmp_path):
    def run_with(executor, out):
        raw = {"name": "ray-vs-local", "dataset": {"bundled": "quickstart"},
               "first_stage": {"bm25": {}, "depth": 10}, "depths": [5, 10],
               "rerankers": [{"name": "tiny", "kind": "cross-encoder",
                              "model": str(tiny_cross_encoder)}],
               "executor": executor, "sanity_check": False,
               "cache": {"enabled": False}}  # both runs score every pair
        config = parse_config(raw, base_dir=Path.cwd())
        run_experiment(config, out_dir=out)
        return json.loads((out / "results.json").read_text()), out

    with torch_threads(1):  # the worker's one CPU: equal thread counts, equal bits
        local, local_out = run_with("local", tmp_path / "local")
    remote, remote_out = run_with({"ray": {"workers": 1}}, tmp_path / "ray")

    assert remote["rerankers"][0]["metrics"] == local["rerankers"][0]["metrics"]
    assert ((remote_out / "runs" / "tiny.scores.tsv").read_text()
            == (local_out / "runs" / "tiny.scores.tsv").read_text())
    assert remote["rerankers"][0]["executor"]["kind"] == "ray"
    assert remote["config"]["executor"]["ray"]["workers"] == 1
    assert local["rerankers"][0]["executor"] == {"kind": "local", "threads": 1}
    assert remote["rerankers"][0]["executor"]["per_worker"][0]["threads"] == 1
    # Latency is measured where the scoring runs: on a worker (its hardware named), same sample.
    ray_stage, local_stage = remote["rerankers"][0], local["rerankers"][0]
    assert ray_stage["latency_where"].startswith("ray worker on ")
    assert ray_stage["latency_hardware"]["id"].startswith("hw-")
    assert local_stage["latency_where"] == "this process"
    assert "latency_hardware" not in local_stage
    for depth in ("5", "10"):
        assert ray_stage["latency_ms"][depth]["queries"] == local_stage["latency_ms"][depth][
            "queries"] > 0
        assert ray_stage["latency_ms"][depth]["pairs_per_query"] == local_stage["latency_ms"][
            depth]["pairs_per_query"]


# -- the score cache on Ray: the driver reads it, workers see only the misses -----------------


def test_second_ray_run_with_the_same_cache_scores_nothing(ray_executor, scifact_shortlist,
                                                          scifact_ce, local_scores, tmp_path):
    dataset, run = scifact_shortlist
    expected, local_stats = local_scores
    with ScoreCache(tmp_path / "scores.sqlite") as cache:
        first = _reranker(scifact_ce)
        assert ray_executor.score(first, dataset, run, cache=cache) == expected
        assert (first.stats.pairs_scored, first.stats.pairs_from_cache) == (100, 0)

        second = _reranker(scifact_ce)
        scores = ray_executor.score(second, dataset, run, cache=cache)

    assert scores == expected  # read back from the cache, to the bit
    assert [list(s) for s in scores.values()] == [list(s) for s in expected.values()]
    assert (second.stats.pairs_scored, second.stats.pairs_from_cache) == (0, 100)
    assert ray_executor.run_info["chunks_scored"] == 0
    # Truncation flags travelled from the workers into the cache and back.
    assert first.stats.pairs_truncated == second.stats.pairs_truncated \
        == local_stats.pairs_truncated
    assert second.stats.extra["cache_fingerprint"] == first.stats.extra["cache_fingerprint"]


def test_cached_pairs_are_not_rescored_on_ray(ray_executor, scifact_shortlist, scifact_ce,
                                              tmp_path):
    """The cache is authoritative: a value planted in it is what the run reports."""
    dataset, run = scifact_shortlist
    with ScoreCache(tmp_path / "scores.sqlite") as cache:
        ray_executor.score(_reranker(scifact_ce), dataset, run, cache=cache)
        q = sorted(run.ranking)[0]
        d = run.ranking[q][0]
        view = CacheView(cache, _reranker(scifact_ce), dataset)
        cache.put(view.fp_id, [(text_sha(dataset.queries[q]), text_sha(dataset.corpus[d]),
                                123.25, False)])
        reranker = _reranker(scifact_ce)
        scores = ray_executor.score(reranker, dataset, run, cache=cache)
    assert scores[q][d] == 123.25
    assert reranker.stats.pairs_scored == 0


def test_partly_cached_ray_run_scores_only_the_misses_like_local(ray_executor,
                                                                 scifact_shortlist, scifact_ce,
                                                                 tmp_path):
    """Two caches filled alike with the top 5 of 10 of four queries: each chunk has 5 hits and
    5 misses. Ray and local score the same misses in the same batches: equal to the bit."""
    dataset, run = scifact_shortlist
    qs = sorted(run.ranking)[:4]
    small = Run(run.name, {q: run.ranking[q] for q in qs}, {q: run.scores[q] for q in qs})
    reranker = _reranker(scifact_ce)  # one model load; stats reset per pass
    with ScoreCache(tmp_path / "local.sqlite") as a, ScoreCache(tmp_path / "ray.sqlite") as b:
        with torch_threads(WORKER_THREADS):
            for cache in (a, b):
                LocalExecutor(pairs_per_chunk=1).score(reranker, dataset, small.top(5),
                                                       cache=cache)
            reranker.stats = ScoringStats()
            local = LocalExecutor(pairs_per_chunk=1).score(reranker, dataset, small, cache=a)
        local_stats, reranker.stats = reranker.stats, ScoringStats()
        remote = ray_executor.score(reranker, dataset, small, cache=b)
        ray_stats = reranker.stats

    assert remote == local
    assert ray_stats.pairs_scored == local_stats.pairs_scored == 20  # the misses only
    assert ray_stats.pairs_from_cache == local_stats.pairs_from_cache == 20
    assert ray_stats.pairs_truncated == local_stats.pairs_truncated
    assert sum(w["pairs"] for w in ray_executor.run_info["per_worker"]) == 20


def test_ray_sweep_equals_local_sweep_and_reuses_the_pool_across_datasets(local_ray,
                                                                          tiny_cross_encoder,
                                                                          tmp_path):
    from rerank_eval.runner import run_sweep

    def sweep_with(executor, out):
        raw = {"name": "sw", "first_stage": {"bm25": {}, "depth": 10}, "depths": [5, 10],
               "datasets": [{"name": "a", "bundled": "quickstart"},
                            {"name": "b", "bundled": "quickstart",
                             "sample": {"queries": 8, "seed": 1}}],
               "rerankers": [{"name": "tiny", "kind": "cross-encoder",
                              "model": str(tiny_cross_encoder)}],
               "executor": executor, "sanity_check": False, "latency": {"queries": 0},
               "cache": {"enabled": False}}  # b's pairs are a's: every cell must score
        run_sweep(parse_config(raw, base_dir=Path.cwd()), out_dir=out)
        return json.loads((out / "sweep.json").read_text())["cells"]

    local = sweep_with("local", tmp_path / "local")
    remote = sweep_with({"ray": {"workers": 1}}, tmp_path / "ray")

    assert [c["metrics"] for c in remote] == [c["metrics"] for c in local]
    assert [c["pairs_scored"] for c in remote] == [c["pairs_scored"] for c in local]
    executors = [json.loads((tmp_path / "ray" / c["results"]).read_text())["rerankers"][0]
                 ["executor"] for c in remote]
    assert [e["pool"] for e in executors] == ["started", "reused"]  # one model load per worker
