"""Mixedbread reranking: POST /v1/reranking, billed in tokens (usage.total_tokens)."""

from __future__ import annotations

from typing import Any

from rerank_eval.params import NonEmptyStr, Str
from rerank_eval.rerankers.hosted.base import HostedParams, HostedReranker
from rerank_eval.rerankers.hosted.response import token_usage


class MixedbreadParams(HostedParams):
    """``kind: mixedbread``: Mixedbread reranking."""

    provider = "Mixedbread"
    doc_cap = 1000  # documented: between 1 and 1,000 input items
    billing = "tokens"

    model: NonEmptyStr = "mixedbread-ai/mxbai-rerank-large-v2"
    base_url: Str = "https://api.mixedbread.com"
    api_key_env: NonEmptyStr = "MXBAI_API_KEY"


class MixedbreadReranker(HostedReranker):
    """Documents go in ``input``; answers are ``data[{index, score}]``."""

    kind = "mixedbread"
    Params = MixedbreadParams
    params: MixedbreadParams
    path = "/v1/reranking"
    results_key = "data"
    score_key = "score"

    def payload(self, query: str, passages: list[str]) -> dict[str, Any]:
        return {"model": self.params.model, "query": query, "input": passages,
                "top_k": len(passages), "return_input": False}

    def usage_of(self, body: dict[str, Any]) -> dict[str, float]:
        return token_usage(body)
