"""Jina Reranker: POST /v1/rerank, billed in tokens (usage.total_tokens)."""

from __future__ import annotations

from typing import Any

from rerank_eval.params import NonEmptyStr, Str
from rerank_eval.rerankers.hosted.base import HostedParams, HostedReranker
from rerank_eval.rerankers.hosted.response import token_usage


class JinaParams(HostedParams):
    """``kind: jina``: Jina Reranker."""

    provider = "Jina"
    doc_cap = 1000  # no per-request cap found in the docs; 1,000 like the others
    billing = "tokens"

    model: NonEmptyStr = "jina-reranker-v2-base-multilingual"
    base_url: Str = "https://api.jina.ai"
    api_key_env: NonEmptyStr = "JINA_API_KEY"


class JinaReranker(HostedReranker):
    """``results[{index, relevance_score}]``; documents are not echoed back."""

    kind = "jina"
    Params = JinaParams
    params: JinaParams
    path = "/v1/rerank"
    results_key = "results"
    score_key = "relevance_score"

    def payload(self, query: str, passages: list[str]) -> dict[str, Any]:
        return {"model": self.params.model, "query": query, "documents": passages,
                "top_n": len(passages), "return_documents": False}

    def usage_of(self, body: dict[str, Any]) -> dict[str, float]:
        return token_usage(body)
