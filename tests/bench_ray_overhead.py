"""Benchmark (a command, not a test): the Ray executor's overhead against the local executor on
the same pairs (SciFact test, BM25 top-20 of 30 seeded queries = 600 pairs, the packaged MiniLM
as a cross-encoder, max_length 256), in interleaved rounds on one local Ray instance.

    PYTHONPATH=eval python tests/bench_ray_overhead.py [--queries 30] [--depth 20] [--rounds 2]

Prints ray.init time, the first (cold: actors start and load the model) and warm (pool reused)
wall times of each Ray setup next to the local executor's warm wall time, their ratios, and
per-worker pairs/s. Needs ../shared/data/scifact and Ray.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import ray  # noqa: E402
from rerank_eval.config import ExecutorConfig  # noqa: E402
from rerank_eval.datasets import load_dataset  # noqa: E402
from rerank_eval.first_stage import FIRST_STAGES  # noqa: E402
from rerank_eval.rerankers import build_reranker  # noqa: E402
from rerank_eval.scoring.executors import LocalExecutor  # noqa: E402
from rerank_eval.scoring.ray_executor import RayExecutor  # noqa: E402

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
PARAMS = {"model": "packaged:all-minilm-l6-v2", "max_length": 256, "batch_size": 32}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    dataset = load_dataset("beir", str(SCIFACT), base_dir=Path.cwd())
    dataset = dataset.sample_queries(args.queries, 0)
    run = FIRST_STAGES["bm25"]({}, base_dir=Path.cwd()).retrieve(dataset, args.depth)
    pairs = sum(len(d) for d in run.ranking.values())

    def reranker():
        return build_reranker("minilm-ce", "cross-encoder", PARAMS, base_dir=Path.cwd())

    t0 = time.perf_counter()
    # Both Ray setups keep their pools between rounds (4 logical CPUs); only one setup scores
    # at a time, so each still has the machine's cores to itself.
    ray.init(num_cpus=4, include_dashboard=False, configure_logging=False, log_to_driver=False)
    print(f"ray.init: {time.perf_counter() - t0:.1f} s", flush=True)
    setups = {
        "local (1 process, torch threads = all cores)": LocalExecutor(pairs_per_chunk=160),
        "ray 1 worker x 2 CPUs": RayExecutor(ExecutorConfig.on_ray(workers=1,
                                                            num_cpus_per_worker=2),
                                             pairs_per_chunk=160),
        "ray 2 workers x 1 CPU": RayExecutor(ExecutorConfig.on_ray(workers=2),
                                             pairs_per_chunk=160),
    }
    local_rr = reranker()
    local_rr.describe()  # load the model: local timings are warm from the start
    rrs = {name: (local_rr if isinstance(ex, LocalExecutor) else reranker())
           for name, ex in setups.items()}
    reference = None
    walls: dict[str, list[float]] = {name: [] for name in setups}
    cold: dict[str, float] = {}
    for r in range(args.rounds + 1):  # round 0: Ray pools start (cold)
        for name, ex in setups.items():
            t0 = time.perf_counter()
            scores = ex.score(rrs[name], dataset, run)
            wall = time.perf_counter() - t0
            reference = reference or scores
            assert scores == reference, f"{name}: scores differ from the first setup's"
            if r == 0 and not isinstance(ex, LocalExecutor):
                cold[name] = wall
            else:
                walls[name].append(wall)
            print(f"  round {r} {name}: {wall:.1f} s", flush=True)
            if r == args.rounds and ex.run_info.get("per_worker"):
                rates = [f"{w['pairs_per_s']:.0f}" for w in ex.run_info["per_worker"]]
                print(f"  {name}: per-worker pairs/s (busy time) {', '.join(rates)}")
    local = statistics.median(walls[next(iter(setups))])
    print(f"{pairs} pairs ({args.queries} queries x top-{args.depth}), {os.cpu_count()} cores; "
          f"scores identical across setups")
    for name in setups:
        warm = statistics.median(walls[name])
        line = (f"{name:<46} warm {warm:6.1f} s ({pairs / warm:5.0f} pairs/s, "
                f"{warm / local:.2f}x local)")
        if name in cold:
            line += f"; cold {cold[name]:.1f} s (actor start + model load)"
        print(line)
    for ex in setups.values():
        ex.close()
    ray.shutdown()


if __name__ == "__main__":
    main()
