"""The shared settings of self-hosted rerank servers (TEI, Infinity, vLLM).

They differ from the cloud APIs in three ways: ``base_url`` is required (there is no public
endpoint), the key is optional (``api_key_env`` only when the server was started with one) and
nothing is billed (``price`` is refused; usage is recorded where the server reports it, with its
unit named in ``usage.unit``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from rerank_eval.params import NonEmptyStr, PositiveInt, Str
from rerank_eval.rerankers.hosted.base import HostedParams, HostedReranker

# No documented per-request cap: the server's own batch settings decide (TEI's
# --max-client-batch-size, for one); max_docs_per_request is the client's knob.
SERVER_DOC_CAP = 100_000


class SelfHostedParams(HostedParams):
    """Keys of every self-hosted server kind."""

    doc_cap = SERVER_DOC_CAP
    billing = "none"
    billed = False

    model: NonEmptyStr | None = None  # type: ignore[assignment]
    """The served model's name: sent where the server takes one, and recorded in results.json
    (``rerank-eval agree`` pairs rerankers that declare the same model)."""
    base_url: Str
    """Scheme, host, port and any URL prefix the server was started with
    (``http://127.0.0.1:7997/v1``); required."""
    api_key_env: NonEmptyStr | None = None
    """The environment variable holding the key, if the server was started with one."""
    max_docs_per_request: PositiveInt = 1000


class SelfHostedReranker(HostedReranker):
    """Base of the self-hosted kinds: scores are the served checkpoint's, so ``model`` names
    it (empty when not given) and describe() says the server is self-hosted."""

    Params: ClassVar[type[SelfHostedParams]] = SelfHostedParams
    params: SelfHostedParams

    @property
    def model_id(self) -> str:
        return self.params.model or ""

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "self_hosted": True}

    def with_model(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with ``model`` added when one was configured."""
        return body if self.params.model is None else {"model": self.params.model, **body}
