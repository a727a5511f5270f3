"""Voyage AI rerankers: POST /v1/rerank, billed in tokens (usage.total_tokens)."""

from __future__ import annotations

from typing import Any

from rerank_eval.rerankers.hosted.base import HostedReranker, hosted_allowed
from rerank_eval.rerankers.hosted.response import token_usage


class VoyageReranker(HostedReranker):
    """``data[{index, relevance_score}]``; ``truncation`` (default true) is passed through."""

    kind = "voyage"
    provider = "Voyage"
    path = "/v1/rerank"
    doc_cap = 1000  # documented: at most 1,000 documents (and a total-token limit per request)
    billing = "tokens"
    results_key = "data"
    score_key = "relevance_score"
    allowed = hosted_allowed(model="rerank-2.5", base_url="https://api.voyageai.com",
                             api_key_env="VOYAGE_API_KEY", max_docs=1000, truncation=True)

    def payload(self, query: str, passages: list[str]) -> dict[str, Any]:
        return {"query": query, "documents": passages, "model": self.params["model"],
                "top_k": len(passages), "truncation": bool(self.params["truncation"])}

    def usage_of(self, body: dict[str, Any]) -> dict[str, float]:
        return token_usage(body)
