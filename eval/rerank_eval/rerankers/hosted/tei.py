"""Text Embeddings Inference (Hugging Face TEI): POST /rerank.

Request ``{query, texts, raw_scores, truncate}``, answer a bare list ``[{index, score}]``.
``raw_scores: true`` is always sent, so scores are the model's logits (TEI otherwise applies a
sigmoid), comparable with a local ``cross-encoder`` run of the same checkpoint. TEI reports no
usage in the body. Its default ``--max-client-batch-size`` is 32 texts per request, hence the
default ``max_docs_per_request``.
"""

from __future__ import annotations

from typing import Any

from rerank_eval.params import Bool, PositiveInt
from rerank_eval.rerankers.hosted.selfhosted import SelfHostedParams, SelfHostedReranker


class TEIParams(SelfHostedParams):
    """``kind: tei``: a Text Embeddings Inference server serving a reranker."""

    provider = "TEI"
    usage_unit = "none (TEI reports no usage)"

    max_docs_per_request: PositiveInt = 32
    """Texts per request; TEI refuses more than its --max-client-batch-size (default 32)."""
    truncate: Bool = True
    """Let TEI truncate pairs longer than the model's maximum (TEI's default is to refuse)."""


class TEIReranker(SelfHostedReranker):
    """``[{index, score}]``, logits (``raw_scores: true``)."""

    kind = "tei"
    Params = TEIParams
    params: TEIParams
    path = "/rerank"
    results_key = "results"  # the bare list is read as {"results": [...]}
    score_key = "score"
    bare_list = True
    score_transform = "identity"

    def payload(self, query: str, passages: list[str]) -> dict[str, Any]:
        return {"query": query, "texts": passages, "raw_scores": True,
                "truncate": bool(self.params.truncate), "return_text": False}

    def usage_of(self, body: dict[str, Any]) -> dict[str, float]:
        return {}
