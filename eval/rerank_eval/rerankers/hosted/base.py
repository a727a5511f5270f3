"""Hosted rerank APIs as rerankers: the shared client behind every provider class.

A provider class only describes its request and response schema (path, payload, where the
results, scores and billed usage are). Everything else lives here: grouping pairs by query,
chunking to the provider's document cap, asking for every candidate's score, validating the
answer, retries, the client-side rate and concurrency limits, usage, cost and latency.

Scores from different chunks of one query are comparable because these endpoints return an
absolute relevance score per (query, document) — a pointwise model's output, not a rank or a
softmax over the request. A listwise model would break that; ``queries_split`` in the usage
counts the queries whose candidates were spread over several requests, and a
``max_docs_per_request`` at least the rerank depth keeps every query in one request.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import numpy as np
from pydantic import field_validator, model_validator

from rerank_eval.errors import InputError
from rerank_eval.params import (
    NonEmptyStr,
    NonNegativeNumber,
    PositiveInt,
    Str,
    field_error,
)
from rerank_eval.progress import Progress
from rerank_eval.rerankers.base import Reranker
from rerank_eval.rerankers.hosted.params import TransportParams, check_http_url
from rerank_eval.rerankers.hosted.ratelimit import RateLimiter
from rerank_eval.rerankers.hosted.response import (
    HostedAPIError,
    scrub_secret,
    validate_scores,
)
from rerank_eval.rerankers.hosted.retry import Backoff, GaveUp, RetryLoop
from rerank_eval.rerankers.hosted.transport import (
    Reply,
    Transport,
    accept_json,
    is_loopback,
)

logger = logging.getLogger(__name__)

PRICE_UNITS = {"search_units": "per_1k_search_units", "tokens": "per_1m_tokens"}
# billing -> the usage key summed from responses (None: the server reports no usage)
USAGE_KEYS: dict[str, str | None] = {"search_units": "search_units", "tokens": "total_tokens",
                                     "characters": "characters", "none": None}
CHARS_PER_TOKEN = 4  # estimate for the client-side tokens/min limit (providers bill real counts)


class HostedParams(TransportParams):
    """Keys every hosted provider takes; a provider's model sets its defaults (model,
    base_url, api_key_env) and the class facts below, and may add keys of its own."""

    provider: ClassVar[str]  # its name in messages
    doc_cap: ClassVar[int]  # the provider's documents-per-request limit
    billing: ClassVar[str]  # a key of USAGE_KEYS; only PRICE_UNITS' keys take a price
    usage_unit: ClassVar[str] = ""  # what the usage counts, in words (results.json)
    billed: ClassVar[bool] = True  # False: self-hosted, no price

    model: NonEmptyStr
    """The provider's model name."""
    base_url: Str
    """Scheme and host (the provider's path is appended); http only for loopback."""
    max_docs_per_request: PositiveInt = 1000
    """Candidates per request, at most the provider's cap."""
    price: dict[str, NonNegativeNumber] | None = None
    """USD per billed unit, for cost_usd in results.json: {per_1k_search_units: X} or
    {per_1m_tokens: X}, as the provider bills."""

    @field_validator("base_url", mode="after")
    @classmethod
    def _check_base_url(cls, url: str) -> str:
        check_http_url(url)
        return url

    @field_validator("price", mode="after")
    @classmethod
    def _check_price(cls, price: dict[str, float] | None) -> dict[str, float] | None:
        if price is not None and (not cls.billed or cls.billing not in PRICE_UNITS):
            raise field_error(f"{cls.provider} is self-hosted and not billed per request; "
                              "remove price")
        unit = PRICE_UNITS.get(cls.billing)
        if price is not None and set(price) != {unit}:
            raise field_error(f"{cls.provider} bills {cls.billing}; give {{{unit}: <USD>}}")
        return price

    @model_validator(mode="after")
    def _key_over_https(self) -> HostedParams:
        parts = urlsplit(self.base_url)
        if (self.api_key_env is not None and parts.scheme == "http"
                and not is_loopback(parts.hostname or "")):
            raise field_error("plain http would send the API key unencrypted; use https "
                              "(http is allowed for loopback only, or without api_key_env)",
                              "base_url")
        return self

    @model_validator(mode="after")
    def _within_cap(self) -> HostedParams:
        if self.max_docs_per_request > self.doc_cap:
            raise field_error(f"{self.max_docs_per_request} exceeds the {self.provider} limit "
                              f"of {self.doc_cap} documents per request", "max_docs_per_request")
        return self


@dataclass
class _Chunk:
    """One API request: a query and a slice of its candidates."""

    number: int
    query: str
    passages: list[str]
    offset: int  # position of passages[0] in the flat pair list
    group: int
    first: int  # index of passages[0] among the query's candidates
    group_size: int

    def label(self, provider: str, name: str) -> str:
        q = self.query if len(self.query) <= 40 else self.query[:37] + "..."
        return (f"{provider} reranker {name!r}, request #{self.number} (query {q!r}, "
                f"candidates {self.first}-{self.first + len(self.passages) - 1} "
                f"of {self.group_size})")


def union_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """Total length of the union of (start, end) intervals: the wall time during which at
    least one request was waiting out a failure (overlapping waits count once)."""
    total, end = 0.0, -math.inf
    for lo, hi in sorted(intervals):
        if hi <= end:
            continue
        total += hi - max(lo, end)
        end = hi
    return total


class HostedReranker(Reranker):
    """Base class; subclasses set the class attributes and the three schema hooks."""

    latency_probes = False  # probes would be billed requests; see request_latency_summary_ms
    # Cloud rerankers return their own relevance scale, not a transform of a known logit.
    score_transform = "unknown"

    Params: ClassVar[type[HostedParams]] = HostedParams
    params: HostedParams
    path: ClassVar[str]
    results_key: ClassVar[str]
    score_key: ClassVar[str]
    # The answer is a bare JSON list of results rather than an object holding one (TEI).
    bare_list: ClassVar[bool] = False

    def __init__(self, name: str, params: HostedParams | Mapping[str, Any], *, base_dir: Path):
        super().__init__(name, params, base_dir=base_dir)
        p = self.params
        self.field = f"rerankers[{name}]"
        self.base_url = p.base_url.rstrip("/")
        self.cap = p.max_docs_per_request
        self.timeout_s = float(p.timeout_s)
        self.max_retries = p.max_retries
        self.backoff_base_s = float(p.backoff_base_s)
        self.backoff_max_s = float(p.backoff_max_s)
        self.concurrency = p.concurrency
        self.price = None if p.price is None else {k: float(v) for k, v in p.price.items()}
        self._api_key = "" if p.api_key_env is None else self._read_key(p.api_key_env)
        self.limiter = RateLimiter(p.requests_per_minute, p.tokens_per_minute)
        self.transport = Transport(self.base_url, self.timeout_s)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._usage: Counter[str] = Counter()
        self._retry_reasons: Counter[str] = Counter()
        self._retries = RetryLoop(self.limiter, Backoff(self.backoff_base_s, self.backoff_max_s),
                                  self.max_retries, self._lock, self._usage, self._retry_reasons)
        self._latency_ms: list[float] = []
        self._waits: list[tuple[float, float]] = []  # (start, end) of waiting out failures
        self._requests = 0
        self.sleep = time.sleep  # tests may replace it

    def _read_key(self, env: str) -> str:
        """The key in ``env``, stripped of surrounding whitespace (a key read from a file keeps
        its newline). A key the HTTP client cannot send is refused here, naming only the
        variable: http.client's own error would quote the whole Authorization header."""
        key = os.environ.get(env, "").strip()
        if not key:
            raise InputError(f"{self.field}: environment variable {env} is not set "
                             f"(the {self.provider} API key; api_key_env names the variable)")
        where = f"{self.field}: the API key in environment variable {env}"
        if any(unicodedata.category(ch) == "Cc" for ch in key):
            raise InputError(f"{where} contains a control character (a line break or "
                             "similar); set it to the key alone")
        if any(ord(ch) > 0xFF for ch in key):
            raise InputError(f"{where} contains a character outside Latin-1, which an HTTP "
                             "header cannot carry (a pasted curly quote or similar?)")
        return key

    @property
    def provider(self) -> str:
        return self.Params.provider

    @property
    def doc_cap(self) -> int:
        return self.Params.doc_cap

    @property
    def billing(self) -> str:
        return self.Params.billing

    # -- provider schema hooks -------------------------------------------------------------
    def payload(self, query: str, passages: list[str]) -> dict[str, Any]:
        """The request body asking for the scores of all ``passages``."""
        raise NotImplementedError

    def usage_of(self, body: dict[str, Any]) -> dict[str, float]:
        """Billed units in a response, e.g. {"total_tokens": 812}; {} when absent."""
        raise NotImplementedError

    def scores_of(self, body: dict[str, Any], n: int, label: str) -> np.ndarray:
        """The ``n`` scores of a parsed answer, checked index by index."""
        return validate_scores(body, self.results_key, self.score_key, n, label)

    # -- reporting -------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return self.base_url + self.request_path()

    def request_path(self) -> str:
        """The path POSTed to (below base_url); a kind with several endpoints overrides it."""
        return self.path

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "provider": self.provider, "endpoint": self.endpoint,
                "api_key_env": self.params.api_key_env,
                "max_docs_per_request": self.cap, "concurrency": self.concurrency,
                "requests_per_minute": self.limiter.requests,
                "tokens_per_minute": self.limiter.tokens,
                "score_comparability": "absolute per-document relevance scores; a query "
                                       "split over several requests is scored chunk by chunk",
                "truncation": "done by the provider (not counted in pairs_truncated)",
                "score_transform": self.score_transform,
                **({"usage_unit": self.Params.usage_unit} if self.Params.usage_unit else {})}

    def fingerprint(self) -> dict[str, Any]:
        """Only what changes a score: limits, retries, prices and the key's name do not."""
        keep = {"model", "base_url"} | (set(self.Params.model_fields)
                                        - set(HostedParams.model_fields))
        return {"kind": self.kind, **{k: getattr(self.params, k) for k in sorted(keep)}}

    def _publish(self) -> None:
        """Usage, cost and latency into stats.extra (the pipeline copies it to results)."""
        billed = USAGE_KEYS[self.billing]
        with self._lock:
            usage: dict[str, Any] = {
                k: 0 for k in ("requests", "attempts", "retries", "documents",
                               *([billed] if billed else []), "requests_without_usage",
                               "queries_split")}
            usage.update(self._usage)
            usage["retry_reasons"] = dict(self._retry_reasons)
            if self.Params.usage_unit:
                usage["unit"] = self.Params.usage_unit
            latencies = list(self._latency_ms)
        cost = None
        if self.price is not None and self.billing in PRICE_UNITS:
            unit = PRICE_UNITS[self.billing]
            if self.billing == "search_units":
                cost = usage.get("search_units", 0) / 1000 * self.price[unit]
            else:
                cost = usage.get("total_tokens", 0) / 1e6 * self.price[unit]
        summary: dict[str, float] = {"requests": len(latencies)}
        if latencies:
            arr = np.asarray(latencies)
            summary.update(p50=float(np.percentile(arr, 50)), p95=float(np.percentile(arr, 95)),
                           mean=float(arr.mean()), max=float(arr.max()))
        self.stats.extra.update({
            "usage": usage,
            "price": self.price,
            "cost_usd": cost,
            "request_latency_ms": latencies,
            "request_latency_summary_ms": summary,
        })

    # -- scoring ---------------------------------------------------------------------------
    def _chunks(self, pairs: Sequence[tuple[str, str]]) -> list[_Chunk]:
        groups: list[tuple[int, int]] = []
        start = 0
        for i in range(1, len(pairs) + 1):
            if i == len(pairs) or pairs[i][0] != pairs[start][0]:
                groups.append((start, i))
                start = i
        chunks: list[_Chunk] = []
        for g, (lo, hi) in enumerate(groups):
            for s in range(lo, hi, self.cap):
                e = min(s + self.cap, hi)
                with self._lock:
                    self._requests += 1
                    number = self._requests
                chunks.append(_Chunk(number, pairs[lo][0], [p for _, p in pairs[s:e]], s, g,
                                     s - lo, hi - lo))
        return chunks

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        out = np.full(len(pairs), np.nan, dtype=np.float64)
        if not pairs:
            return out
        chunks = self._chunks(pairs)
        split = {c.group for c in chunks if c.group_size > self.cap}
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.concurrency,
                                                thread_name_prefix=f"{self.kind}-http")
        # A bar of requests (the scoring pass's bar counts pairs); its line only at DEBUG, as
        # a pass makes one such call per chunk of pairs.
        bar = Progress(f"{self.name}: requests", len(chunks), unit="requests",
                       done=f"{self.name}: sent", level=logging.DEBUG, logger=logger)
        with self._lock:
            self._waits.clear()
        futures: dict[Future, _Chunk] = {self._executor.submit(self._request, c): c
                                         for c in chunks}
        for f in futures:
            f.add_done_callback(lambda _f: bar.update())
        error: BaseException | None = None
        try:
            # Every answer is handed over (on_scored: the score cache) as it arrives. After a
            # failure nothing new is sent, but requests already in flight are waited for and
            # kept: they are billed, and a re-run should not pay for them again.
            for f in as_completed(futures):
                if f.cancelled():
                    continue
                if f.exception() is not None:
                    if error is None:
                        error = f.exception()
                        for other in futures:
                            other.cancel()
                    continue
                c = futures[f]
                values = f.result()
                out[c.offset:c.offset + len(c.passages)] = values
                if self.on_scored is not None:
                    self.on_scored(c.offset, values)
            if error is not None:
                raise error
            bar.close()
        finally:
            for f in futures:  # an interrupt, or on_scored failing: send nothing more
                f.cancel()
            bar.abort()
            with self._lock:
                self._usage["queries_split"] += len(split)
                self.stats.retry_wait_s += union_seconds(self._waits)
            self._publish()
        self.stats.pairs_scored += len(pairs)
        return out

    def _request(self, chunk: _Chunk) -> np.ndarray:
        """One chunk: rate limit, send, retry transient failures, validate."""
        label = chunk.label(self.provider, self.name)
        payload = self.payload(chunk.query, chunk.passages)
        est_tokens = math.ceil((len(chunk.query) * len(chunk.passages)
                                + sum(len(p) for p in chunk.passages)) / CHARS_PER_TOKEN)
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

        def send() -> tuple[Reply, dict[str, Any]]:
            reply = self.transport.post_json(self.request_path(), payload, headers)
            return reply, self._accept(reply, label)

        try:
            done = self._retries.run(send, est_tokens, self.sleep)
        except GaveUp as e:
            since = time.monotonic() if e.failing_since is None else e.failing_since
            spent = time.monotonic() - since
            with self._lock:
                self._waits.append((since, since + spent))
            raise HostedAPIError(
                f"{label}: gave up after {e.attempts} attempts over {spent:.1f} s; last: "
                f"{self._scrub(e.last)} (to keep trying longer, raise max_retries, now "
                f"{self.max_retries}, or backoff_max_s, now {self.backoff_max_s:g} s)") from None
        reply, body = done.value
        with self._lock:
            self._usage["attempts"] += 1
            self._usage["requests"] += 1
            self._usage["documents"] += len(chunk.passages)
            self._latency_ms.append(reply.latency_s * 1000)
            usage = self.usage_of(body)
            if not usage:
                self._usage["requests_without_usage"] += 1
            for k, v in usage.items():
                # typeshed's Counter is int-valued; billed units may be floats
                self._usage[k] += v  # type: ignore[assignment]
            if done.failing_since is not None:
                self._waits.append((done.failing_since, done.started))
        return self.scores_of(body, len(chunk.passages), label)

    def _accept(self, reply: Reply, label: str) -> dict[str, Any]:
        """A 200 with a JSON object, or Retryable (429/5xx/408/broken JSON), or a fatal error."""
        return accept_json(reply, label, self.endpoint, self._api_key,
                           self.results_key if self.bare_list else None)

    def _scrub(self, text: str) -> str:
        return scrub_secret(text, self._api_key)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self.transport.close()
