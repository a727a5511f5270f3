"""Jina Reranker: POST /v1/rerank, billed in tokens (usage.total_tokens)."""

from __future__ import annotations

from typing import Any

from rerank_eval.rerankers.hosted.base import HostedReranker, hosted_allowed
from rerank_eval.rerankers.hosted.response import token_usage


class JinaReranker(HostedReranker):
    """``results[{index, relevance_score}]``; documents are not echoed back."""

    kind = "jina"
    provider = "Jina"
    path = "/v1/rerank"
    doc_cap = 1000  # no per-request cap found in the docs; 1,000 like the others
    billing = "tokens"
    results_key = "results"
    score_key = "relevance_score"
    allowed = hosted_allowed(model="jina-reranker-v2-base-multilingual",
                             base_url="https://api.jina.ai", api_key_env="JINA_API_KEY",
                             max_docs=1000)

    def payload(self, query: str, passages: list[str]) -> dict[str, Any]:
        return {"model": self.params["model"], "query": query, "documents": passages,
                "top_n": len(passages), "return_documents": False}

    def usage_of(self, body: dict[str, Any]) -> dict[str, float]:
        return token_usage(body)
