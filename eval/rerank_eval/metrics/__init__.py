"""Metrics with trec_eval semantics, computed by ranx on strictly ordered rankings."""

from rerank_eval.metrics.evaluate import Evaluation, evaluate_ranking
from rerank_eval.metrics.specs import MetricSpec, parse_metric, parse_metrics

__all__ = ["Evaluation", "MetricSpec", "evaluate_ranking", "parse_metric", "parse_metrics"]
