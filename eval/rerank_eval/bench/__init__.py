"""`rerank-eval bench`: how fast the harness scores real pairs, next to what a user would write,
and how faithful each faster path stays (``cross_encoder.py``: cross-encoders against
sentence-transformers; ``lm.py``: causal-LM rerankers against the model card's loop)."""

from rerank_eval.bench.cross_encoder import format_report, run_bench
from rerank_eval.bench.pairs import (
    BenchPairs,
    git_state,
    hardware,
    kendall_per_query,
    load_pairs,
    ndcg10,
    package_versions,
    provenance,
)

__all__ = ["BenchPairs", "format_report", "git_state", "hardware", "kendall_per_query",
           "load_pairs", "ndcg10", "package_versions", "provenance", "run_bench"]
