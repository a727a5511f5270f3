"""Compare systems with paired statistics, and gate a candidate against a baseline."""

from rerank_eval.compare.compare import ComparisonReport, compare_systems
from rerank_eval.compare.gate import LatencyRule, MetricRule, Verdict, run_gate
from rerank_eval.compare.systems import System, load_systems

__all__ = ["ComparisonReport", "LatencyRule", "MetricRule", "System", "Verdict",
           "compare_systems", "load_systems", "run_gate"]
