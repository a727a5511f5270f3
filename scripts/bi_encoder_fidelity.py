"""Fidelity of the bi-encoder reranker in bf16 against fp32 on the same pairs.

The bi-encoder takes ``dtype: auto`` like the cross-encoder (bf16 autocast on a CPU with
native bf16); this scores one first-stage shortlist with both and prints max |score diff|,
per-query Kendall tau (mean, min), nDCG@10 of both rankings and the seconds each pass took.

    PYTHONPATH=eval python scripts/bi_encoder_fidelity.py [BEIR_DIR] [--depth 20] [--queries N]

Default BEIR_DIR: the bundled quickstart collection. Timings are one pass each on whatever
else the machine is running: indicative, not a benchmark.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import rerank_eval
from rerank_eval.bench.pairs import by_query as _by_query
from rerank_eval.bench.pairs import hardware, kendall_per_query, load_pairs, ndcg10
from rerank_eval.rerankers.bi_encoder import BiEncoder

QUICKSTART = Path(rerank_eval.__file__).parent / "datasets" / "data" / "quickstart"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("beir", nargs="?", default=str(QUICKSTART))
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--queries", type=int)
    parser.add_argument("--model", default="packaged:all-minilm-l6-v2")
    args = parser.parse_args()
    bp = load_pairs(args.beir, depth=args.depth, queries=args.queries)
    scores, seconds = {}, {}
    for dtype in ("float32", "bfloat16"):
        reranker = BiEncoder(dtype, {"model": args.model, "dtype": dtype}, base_dir=Path.cwd())
        reranker.score(bp.pairs[:8])  # load and warm up
        t0 = time.perf_counter()
        scores[dtype] = reranker.score(bp.pairs)
        seconds[dtype] = time.perf_counter() - t0
        reranker.close()
    fp32, bf16 = scores["float32"], scores["bfloat16"]
    taus = kendall_per_query(_by_query(bp.keys, fp32), _by_query(bp.keys, bf16))
    hw = hardware()
    print(json.dumps({
        "pairs": bp.source, "count": len(bp.pairs), "model": args.model,
        "max_abs_diff": float(np.max(np.abs(fp32 - bf16))),
        "kendall_tau_mean": float(np.mean(taus)), "kendall_tau_min": float(np.min(taus)),
        "ndcg10_fp32": ndcg10(bp, fp32), "ndcg10_bf16": ndcg10(bp, bf16),
        "seconds_one_pass": seconds,
        "hardware": {k: hw.get(k) for k in ("cpu_model", "cores_available", "threads_used",
                                             "cpu_native_bf16", "torch", "load_avg_1m")},
    }, indent=2))


if __name__ == "__main__":
    main()
