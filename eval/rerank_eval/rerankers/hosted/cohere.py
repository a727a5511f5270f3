"""Cohere Rerank v2: POST /v2/rerank, billed in search units (meta.billed_units)."""

from __future__ import annotations

from typing import Any

from rerank_eval.params import NonEmptyStr, PositiveInt, Str
from rerank_eval.rerankers.hosted.base import HostedParams, HostedReranker


class CohereParams(HostedParams):
    """``kind: cohere``: Cohere Rerank v2."""

    provider = "Cohere"
    doc_cap = 1000  # the docs recommend at most 1,000 documents per request
    billing = "search_units"

    model: NonEmptyStr = "rerank-v3.5"
    base_url: Str = "https://api.cohere.com"
    api_key_env: NonEmptyStr = "COHERE_API_KEY"
    max_tokens_per_doc: PositiveInt | None = None
    """Passed through when set."""


class CohereReranker(HostedReranker):
    """``results[{index, relevance_score}]``; ``max_tokens_per_doc`` passed through if set."""

    kind = "cohere"
    Params = CohereParams
    params: CohereParams
    path = "/v2/rerank"
    results_key = "results"
    score_key = "relevance_score"

    def payload(self, query: str, passages: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.params.model, "query": query,
                                "documents": passages, "top_n": len(passages)}
        if self.params.max_tokens_per_doc is not None:
            body["max_tokens_per_doc"] = int(self.params.max_tokens_per_doc)
        return body

    def usage_of(self, body: dict[str, Any]) -> dict[str, float]:
        meta = body.get("meta")
        billed = meta.get("billed_units") if isinstance(meta, dict) else None
        if not isinstance(billed, dict):
            return {}
        return {k: v for k in ("search_units",)
                if isinstance(v := billed.get(k), (int, float)) and not isinstance(v, bool)}
