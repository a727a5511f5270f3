"""Listwise (RankGPT-style) rerankers: sliding windows of passages ordered by an LLM."""

from rerank_eval.rerankers.listwise.base import (
    AnswerStore,
    ListwiseReranker,
    RankOutcome,
    WindowRecord,
)
from rerank_eval.rerankers.listwise.params import ListwiseParams
from rerank_eval.rerankers.listwise.parse import ParsedAnswer, parse_answer
from rerank_eval.rerankers.listwise.template import PRESETS, ListwiseTemplate
from rerank_eval.rerankers.listwise.window import window_spans

__all__ = ["PRESETS", "AnswerStore", "ListwiseParams", "ListwiseReranker", "ListwiseTemplate",
           "ParsedAnswer", "RankOutcome", "WindowRecord", "parse_answer", "window_spans"]
