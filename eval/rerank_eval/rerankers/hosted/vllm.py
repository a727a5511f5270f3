"""vLLM serving a cross-encoder (``vllm serve <model>``): POST /rerank or POST /score.

``endpoint: rerank`` sends ``{query, documents, top_n[, model]}`` and reads
``results[{index, relevance_score}]``; ``endpoint: score`` sends ``{text_1: query, text_2:
documents[, model]}`` and reads ``data[{index, score}]``. Both report ``usage.total_tokens``
(real tokens). For a single-label classifier vLLM applies a sigmoid to the logit, so the scores
declare ``score_transform: sigmoid``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from rerank_eval.params import PositiveInt
from rerank_eval.rerankers.hosted.response import token_usage, validate_scores
from rerank_eval.rerankers.hosted.selfhosted import SelfHostedParams, SelfHostedReranker


class VLLMParams(SelfHostedParams):
    """``kind: vllm``: a vLLM server's rerank or score endpoint."""

    provider = "vLLM"
    billing = "tokens"
    usage_unit = "tokens (usage.total_tokens)"

    endpoint: Literal["rerank", "score"] = "rerank"
    """Which vLLM endpoint: /rerank (Jina/Cohere-style) or /score (text_1/text_2 pairs)."""
    truncate_prompt_tokens: PositiveInt | None = None
    """Passed through when set: vLLM truncates each pair to this many tokens."""


class VLLMReranker(SelfHostedReranker):
    """/rerank: ``results[{index, relevance_score}]``; /score: ``data[{index, score}]``."""

    kind = "vllm"
    Params = VLLMParams
    params: VLLMParams
    path = "/rerank"
    results_key = "results"
    score_key = "relevance_score"
    score_transform = "sigmoid"

    def request_path(self) -> str:
        return "/" + self.params.endpoint

    def payload(self, query: str, passages: list[str]) -> dict[str, Any]:
        body: dict[str, Any]
        if self.params.endpoint == "score":
            body = {"text_1": query, "text_2": passages}
        else:
            body = {"query": query, "documents": passages, "top_n": len(passages)}
        if self.params.truncate_prompt_tokens is not None:
            body["truncate_prompt_tokens"] = int(self.params.truncate_prompt_tokens)
        return self.with_model(body)

    def scores_of(self, body: dict[str, Any], n: int, label: str) -> np.ndarray:
        if self.params.endpoint == "score":
            return validate_scores(body, "data", "score", n, label)
        return validate_scores(body, "results", "relevance_score", n, label)

    def usage_of(self, body: dict[str, Any]) -> dict[str, float]:
        return token_usage(body)
