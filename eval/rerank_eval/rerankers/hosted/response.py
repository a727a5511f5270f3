"""Reading a hosted reranker's answer: scores checked index by index, usage, error text.

A malformed answer is an error naming the provider and the request, never a silent
mis-ranking: every requested document must come back once, in range, with a finite score.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from rerank_eval.errors import InputError


class HostedAPIError(InputError):
    """A hosted reranker could not get valid scores: names the provider and the request."""


def token_usage(body: dict[str, Any]) -> dict[str, float]:
    """``usage.total_tokens`` (Jina, Voyage, Mixedbread); {} when the response has none."""
    usage = body.get("usage")
    value = usage.get("total_tokens") if isinstance(usage, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return {}
    return {"total_tokens": value}


MESSAGE_CHARS = 300  # of a provider's error text in our error line
SECRET_PART_CHARS = 6  # a key's prefix or suffix this long is scrubbed too


def scrub_secret(text: str, secret: str) -> str:
    """``text`` with ``secret`` replaced by ``***``, and with any prefix or suffix of it of at
    least SECRET_PART_CHARS characters too: a provider that shortens the key it echoes
    (``sk-live-abc...``, ``...9f8e``) must not leak the part it kept."""
    if not secret:
        return text
    text = text.replace(secret, "***")
    for n in range(len(secret) - 1, SECRET_PART_CHARS - 1, -1):
        text = text.replace(secret[:n], "***").replace(secret[-n:], "***")
    return text


def provider_message(raw: bytes, secret: str = "") -> str:
    """The provider's error text: its 'message'/'detail'/'error' field, one line, with
    ``secret`` scrubbed (see :func:`scrub_secret`) before it is capped at MESSAGE_CHARS, so the
    cut can never leave part of the key behind."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            if body.get(key):
                value = body[key]
                if isinstance(value, dict):
                    value = value.get("message", value)
                text = str(value)
                break
    text = scrub_secret(" ".join(text.split()), secret)
    if len(text) > MESSAGE_CHARS:
        text = scrub_secret(text[:MESSAGE_CHARS], secret) + "..."
    return text or "(empty body)"


def validate_scores(body: dict[str, Any], results_key: str, score_key: str, n: int,
                    label: str) -> np.ndarray:
    """Scores in input order; every index in range, once, with a finite score."""
    items = body.get(results_key)
    if not isinstance(items, list):
        raise HostedAPIError(f"{label}: malformed response: no {results_key!r} list")
    scores = np.full(n, np.nan, dtype=np.float64)
    seen = np.zeros(n, dtype=bool)
    for pos, item in enumerate(items):
        where = f"{results_key}[{pos}]"
        if not isinstance(item, dict):
            raise HostedAPIError(f"{label}: malformed response: {where} is not an object")
        index, value = item.get("index"), item.get(score_key)
        if isinstance(index, bool) or not isinstance(index, int):
            raise HostedAPIError(f"{label}: malformed response: {where}.index is "
                                 f"{index!r}, not an integer")
        if not 0 <= index < n:
            raise HostedAPIError(f"{label}: malformed response: {where}.index {index} is "
                                 f"out of range for {n} documents")
        if seen[index]:
            raise HostedAPIError(f"{label}: malformed response: index {index} appears "
                                 "more than once")
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value)):
            raise HostedAPIError(f"{label}: malformed response: {where}.{score_key} "
                                 f"is {value!r}, not a finite number")
        seen[index] = True
        scores[index] = float(value)
    if not seen.all():
        missing = np.flatnonzero(~seen)
        raise HostedAPIError(f"{label}: malformed response: {len(missing)} of {n} "
                             f"documents have no score (first missing index "
                             f"{int(missing[0])}); all were requested")
    return scores
