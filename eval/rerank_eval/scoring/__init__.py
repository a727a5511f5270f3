"""Scoring engines: turn (query, passage) pairs into model outputs efficiently."""

from rerank_eval.scoring.engine import PairScorer, resolve_device, resolve_dtype

__all__ = ["PairScorer", "resolve_device", "resolve_dtype"]
