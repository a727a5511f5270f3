"""An OpenAI-compatible chat-completions endpoint as a listwise backend (vLLM, llama.cpp's
server, OpenAI, OpenRouter, ...): ``POST {base_url}/v1/chat/completions``.

Built on the hosted rerankers' machinery (``rerankers/hosted``): the same keep-alive
transport, the client-side rate limiter, Retry-After parsing and error-message reading. The
key is read from ``api_key_env`` once, sent only in the Authorization header and scrubbed from
every message; on a loopback ``base_url`` (a local vLLM) it is optional.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rerank_eval.errors import InputError
from rerank_eval.rerankers.hosted.base import CHARS_PER_TOKEN
from rerank_eval.rerankers.hosted.ratelimit import RateLimiter
from rerank_eval.rerankers.hosted.response import HostedAPIError
from rerank_eval.rerankers.hosted.retry import Backoff, GaveUp, RetryLoop
from rerank_eval.rerankers.hosted.transport import (
    Reply,
    Transport,
    accept_json,
    is_loopback,
)
from rerank_eval.rerankers.listwise.template import Message

if TYPE_CHECKING:
    from rerank_eval.rerankers.listwise.params import ListwiseParams

logger = logging.getLogger(__name__)

PATH = "/v1/chat/completions"


@dataclass
class Completion:
    """One generated answer and what it cost."""

    text: str
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float


class ChatBackend:
    """Sends one window's messages, retries 429/5xx/timeouts, returns the answer text."""

    def __init__(self, params: ListwiseParams, field: str):
        assert params.base_url is not None
        self.field = field
        self.params = params
        self.base_url = params.base_url.rstrip("/")
        key = os.environ.get(params.api_key_env, "").strip()
        host = urlsplit(self.base_url).hostname or ""
        if not key and not is_loopback(host):
            raise InputError(f"{field}: environment variable {params.api_key_env} is not set "
                             "(the API key of the chat endpoint; api_key_env names the "
                             "variable; only a loopback base_url may go without)")
        self._api_key = key
        self.limiter = RateLimiter(params.requests_per_minute, params.tokens_per_minute)
        self.transport = Transport(self.base_url, float(params.timeout_s))
        self._lock = threading.Lock()
        self.usage: Counter[str] = Counter()
        self.retry_reasons: Counter[str] = Counter()
        self._retries = RetryLoop(
            self.limiter, Backoff(float(params.backoff_base_s), float(params.backoff_max_s)),
            params.max_retries, self._lock, self.usage, self.retry_reasons)
        self.sleep = time.sleep  # tests may replace it

    @property
    def endpoint(self) -> str:
        return self.base_url + PATH

    def payload(self, messages: list[Message]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.params.model, "messages": messages,
                                "temperature": float(self.params.temperature)}
        if self.params.max_output_tokens is not None:
            body["max_tokens"] = int(self.params.max_output_tokens)
        return body

    def complete(self, messages: list[Message], label: str) -> Completion:
        """One window: rate limit, send, retry transient failures, read the answer."""
        payload = self.payload(messages)
        est_tokens = math.ceil(sum(len(m["content"]) for m in messages) / CHARS_PER_TOKEN)
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

        def send() -> tuple[Reply, dict[str, Any]]:
            reply = self.transport.post_json(PATH, payload, headers)
            return reply, self._accept(reply, label)

        try:
            reply, body = self._retries.run(send, est_tokens, self.sleep).value
        except GaveUp as e:
            raise HostedAPIError(f"{label}: gave up after {e.attempts} attempts; last: "
                                 f"{self._scrub(e.last)}") from None
        text, tokens_in, tokens_out = self._read(body, label)
        with self._lock:
            self.usage["attempts"] += 1
            self.usage["requests"] += 1
            if tokens_in is None or tokens_out is None:
                self.usage["requests_without_usage"] += 1
            self.usage["input_tokens"] += tokens_in or 0
            self.usage["output_tokens"] += tokens_out or 0
        return Completion(text, tokens_in, tokens_out, reply.latency_s * 1000)

    def _accept(self, reply: Reply, label: str) -> dict[str, Any]:
        return accept_json(reply, label, self.endpoint, self._api_key)

    @staticmethod
    def _read(body: dict[str, Any], label: str) -> tuple[str, int | None, int | None]:
        """The answer text (empty when the model gave none) and the token counts."""
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise HostedAPIError(f"{label}: malformed response: no 'choices' list")
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else None
        text = content if isinstance(content, str) else ""
        usage = body.get("usage")
        usage = usage if isinstance(usage, dict) else {}

        def count(key: str) -> int | None:
            value = usage.get(key)
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            return value if ok else None

        return text, count("prompt_tokens"), count("completion_tokens")

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def close(self) -> None:
        self.transport.close()
