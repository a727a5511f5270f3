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
    """A hosted reranker could not get valid scores: names the provider and the request.
    ``scores_so_far``: the call's scores from requests that were answered (NaN elsewhere)."""

    scores_so_far: np.ndarray | None = None


def token_usage(body: dict[str, Any]) -> dict[str, float]:
    """``usage.total_tokens`` (Jina, Voyage, Mixedbread); {} when the response has none."""
    usage = body.get("usage")
    value = usage.get("total_tokens") if isinstance(usage, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return {}
    return {"total_tokens": value}


def provider_message(raw: bytes) -> str:
    """The provider's error text: its 'message'/'detail'/'error' field, one line, capped."""
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
    text = " ".join(text.split())
    return (text[:300] + ("..." if len(text) > 300 else "")) or "(empty body)"


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
