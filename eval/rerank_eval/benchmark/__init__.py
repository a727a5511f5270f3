"""Cost measurements beside quality: hardware fingerprint, latency, throughput, depth choice."""

from rerank_eval.benchmark.hardware import hardware_fingerprint, hardware_id
from rerank_eval.benchmark.latency import (
    latency_summary,
    measure_first_stage_latency,
    measure_rerank_latency,
    throughput,
)
from rerank_eval.benchmark.recommend import Recommendation, recommend_depth

__all__ = [
    "Recommendation",
    "hardware_fingerprint",
    "hardware_id",
    "latency_summary",
    "measure_first_stage_latency",
    "measure_rerank_latency",
    "recommend_depth",
    "throughput",
]
