"""Infinity (``infinity_emb``): POST {prefix}/rerank.

Request ``{query, documents, raw_scores, return_documents, top_n[, model]}``, answer
``{results: [{index, relevance_score}], usage}``. ``raw_scores: true`` is always sent: Infinity
otherwise returns sigmoid probabilities, which agree with the local model only after a
transform. Its ``usage.total_tokens`` counts characters, not tokens (measured with
infinity-emb 0.0.78), so it is recorded as ``characters``.
"""

from __future__ import annotations

from typing import Any

from rerank_eval.rerankers.hosted.selfhosted import SelfHostedParams, SelfHostedReranker


class InfinityParams(SelfHostedParams):
    """``kind: infinity``: an Infinity server (base_url includes its --url-prefix)."""

    provider = "Infinity"
    billing = "characters"
    usage_unit = "characters (Infinity's usage.total_tokens counts characters)"


class InfinityReranker(SelfHostedReranker):
    """``results[{index, relevance_score}]``, logits (``raw_scores: true``)."""

    kind = "infinity"
    Params = InfinityParams
    params: InfinityParams
    path = "/rerank"
    results_key = "results"
    score_key = "relevance_score"
    score_transform = "identity"

    def payload(self, query: str, passages: list[str]) -> dict[str, Any]:
        return self.with_model({"query": query, "documents": passages, "raw_scores": True,
                                "return_documents": False, "top_n": len(passages)})

    def usage_of(self, body: dict[str, Any]) -> dict[str, float]:
        usage = body.get("usage")
        value = usage.get("total_tokens") if isinstance(usage, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return {}
        return {"characters": value}
