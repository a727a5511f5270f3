"""The keys of a client of an HTTP endpoint, shared by the hosted rerankers (``HostedParams``)
and the listwise chat backend (``ListwiseParams``): the key's variable, the deadline, retries
and backoff, client-side rate limits and concurrency. A subclass may re-declare a key to give
it another default (a re-declared key needs its annotation again)."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from rerank_eval.params import (
    NonEmptyStr,
    NonNegativeInt,
    PositiveInt,
    PositiveNumber,
    field_error,
)
from rerank_eval.rerankers.base import RerankerParams


def check_http_url(url: str) -> SplitResult:
    """``url`` split, or a field error unless it is http(s)://host[:port]."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise field_error(f"expected http(s)://host[:port], got {url!r}")
    return parts


class TransportParams(RerankerParams):
    """Keys every client of an HTTP endpoint takes."""

    api_key_env: NonEmptyStr | None
    """The environment variable holding the API key (never the key itself); null only for
    self-hosted servers that take no key."""
    timeout_s: PositiveNumber = 60.0
    """Seconds for a whole request, from connecting to the last byte of the answer (a deadline,
    not a limit per socket read)."""
    max_retries: NonNegativeInt = 7
    """Retries of 429/5xx/timeouts/refused connections (Retry-After is honoured). The default
    keeps trying for at least a minute (backoff 1, 2, 4, ... s, capped at backoff_max_s), long
    enough to ride out a routine server restart."""
    backoff_base_s: PositiveNumber = 1.0
    backoff_max_s: PositiveNumber = 60.0
    requests_per_minute: PositiveInt | None = None
    """Client-side limit (none: unlimited)."""
    tokens_per_minute: PositiveInt | None = None
    concurrency: PositiveInt = 4
    """Requests in flight."""
