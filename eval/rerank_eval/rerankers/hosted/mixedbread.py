"""Mixedbread reranking: POST /v1/reranking, billed in tokens (usage.total_tokens)."""

from __future__ import annotations

from typing import Any

from rerank_eval.rerankers.hosted.base import HostedReranker, hosted_allowed
from rerank_eval.rerankers.hosted.response import token_usage


class MixedbreadReranker(HostedReranker):
    """Documents go in ``input``; answers are ``data[{index, score}]``."""

    kind = "mixedbread"
    provider = "Mixedbread"
    path = "/v1/reranking"
    doc_cap = 1000  # documented: between 1 and 1,000 input items
    billing = "tokens"
    results_key = "data"
    score_key = "score"
    allowed = hosted_allowed(model="mixedbread-ai/mxbai-rerank-large-v2",
                             base_url="https://api.mixedbread.com", api_key_env="MXBAI_API_KEY",
                             max_docs=1000)

    def payload(self, query: str, passages: list[str]) -> dict[str, Any]:
        return {"model": self.params["model"], "query": query, "input": passages,
                "top_k": len(passages), "return_input": False}

    def usage_of(self, body: dict[str, Any]) -> dict[str, float]:
        return token_usage(body)
