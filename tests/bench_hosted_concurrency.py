"""Benchmark (a command, not a test): the hosted client's overhead and concurrency speed-up
against the loopback fake server with a simulated 50 ms provider latency per request.

    PYTHONPATH=eval:tests python tests/bench_hosted_concurrency.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from fake_rerank_server import FakeRerankServer
from rerank_eval.rerankers import build_reranker


def main() -> None:
    os.environ["COHERE_API_KEY"] = "bench-key"
    server = FakeRerankServer("bench-key", delay_s=0.05)
    pairs = [(f"query {q} about topic {q}", f"passage {d} on topic {q % 3}")
             for q in range(20) for d in range(20)]
    walls = {}
    for concurrency in (1, 4):
        rr = build_reranker("bench", "cohere", {"base_url": server.base_url("cohere"),
                                                "max_docs_per_request": 10,
                                                "concurrency": concurrency}, base_dir=Path.cwd())
        t0 = time.perf_counter()
        rr.score(pairs)
        walls[concurrency] = time.perf_counter() - t0
        s = rr.stats.extra["request_latency_summary_ms"]
        print(f"concurrency={concurrency}: {len(pairs)} pairs in {s['requests']} requests, "
              f"{walls[concurrency]:.2f} s wall, request p50 {s['p50']:.1f} ms, "
              f"p95 {s['p95']:.1f} ms (server sleeps 50 ms)")
        rr.close()
    print(f"speed-up concurrency 4 vs 1: {walls[1] / walls[4]:.2f}x")
    server.close()


if __name__ == "__main__":
    main()
