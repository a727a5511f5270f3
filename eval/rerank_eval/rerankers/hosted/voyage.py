"""Voyage AI rerankers: POST /v1/rerank, billed in tokens (usage.total_tokens)."""

from __future__ import annotations

from typing import Any

from rerank_eval.params import Bool, NonEmptyStr, Str
from rerank_eval.rerankers.hosted.base import HostedParams, HostedReranker
from rerank_eval.rerankers.hosted.response import token_usage


class VoyageParams(HostedParams):
    """``kind: voyage``: Voyage AI rerankers."""

    provider = "Voyage"
    doc_cap = 1000  # documented: at most 1,000 documents (and a total-token limit per request)
    billing = "tokens"

    model: NonEmptyStr = "rerank-2.5"
    base_url: Str = "https://api.voyageai.com"
    api_key_env: NonEmptyStr = "VOYAGE_API_KEY"
    truncation: Bool = True
    """Passed through: let Voyage truncate long inputs."""


class VoyageReranker(HostedReranker):
    """``data[{index, relevance_score}]``; ``truncation`` (default true) is passed through."""

    kind = "voyage"
    Params = VoyageParams
    params: VoyageParams
    path = "/v1/rerank"
    results_key = "data"
    score_key = "relevance_score"

    def payload(self, query: str, passages: list[str]) -> dict[str, Any]:
        return {"query": query, "documents": passages, "model": self.params.model,
                "top_k": len(passages), "truncation": bool(self.params.truncation)}

    def usage_of(self, body: dict[str, Any]) -> dict[str, float]:
        return token_usage(body)
