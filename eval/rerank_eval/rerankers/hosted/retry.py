"""The retry loop shared by the hosted rerankers and the listwise chat backend: rate limit,
send, retry transient failures (429/5xx/timeouts, anything raising :class:`Retryable`) with
exponential backoff and jitter, never sooner than the server's Retry-After.

The caller keeps what differs: what one attempt sends and accepts, how a success is counted
and the give-up message (:class:`GaveUp` carries what it needs)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from rerank_eval.rerankers.hosted.ratelimit import RateLimiter
from rerank_eval.rerankers.hosted.transport import Retryable

T = TypeVar("T")


@dataclass
class Backoff:
    """Exponential backoff with jitter: half of min(max_s, base_s * 2**attempt) plus up to
    as much again at random."""

    base_s: float
    max_s: float
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before the next attempt; never shorter than the server's Retry-After."""
        ceiling = min(self.max_s, self.base_s * 2 ** attempt)
        delay = ceiling / 2 + self.rng.uniform(0, ceiling / 2)
        return max(delay, retry_after or 0.0)


@dataclass
class Success(Generic[T]):
    """What the successful attempt returned, when it started and, if attempts failed before
    it, when the first of them started (``time.monotonic``)."""

    value: T
    started: float
    failing_since: float | None


class GaveUp(Exception):
    """Every attempt failed transiently."""

    def __init__(self, attempts: int, last: str, failing_since: float | None):
        super().__init__(f"gave up after {attempts} attempts; last: {last}")
        self.attempts = attempts
        self.last = last  # the last failure, unscrubbed
        self.failing_since = failing_since  # start of the first failed attempt


@dataclass
class RetryLoop:
    """Runs one request to success or :class:`GaveUp`, counting failed attempts
    (``usage["attempts"]``, ``reasons``) and retries (``usage["retries"]``) under ``lock``;
    the caller counts a success."""

    limiter: RateLimiter
    backoff: Backoff
    max_retries: int
    lock: threading.Lock
    usage: Counter[str]
    reasons: Counter[str]

    def run(self, send: Callable[[], T], est_tokens: int,
            sleep: Callable[[float], object]) -> Success[T]:
        attempts = self.max_retries + 1
        last = ""
        failing_since: float | None = None
        for attempt in range(attempts):
            self.limiter.acquire(est_tokens)
            retry_after = None
            started = time.monotonic()
            try:
                value = send()
            except Retryable as e:
                last, retry_after = str(e), e.retry_after
                failing_since = started if failing_since is None else failing_since
                with self.lock:
                    self.usage["attempts"] += 1
                    self.reasons[e.reason] += 1
            else:
                return Success(value, started, failing_since)
            if attempt + 1 < attempts:
                with self.lock:
                    self.usage["retries"] += 1
                sleep(self.backoff.delay(attempt, retry_after))
        raise GaveUp(attempts, last, failing_since)
