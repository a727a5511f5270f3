"""Split long passages into overlapping token windows (for ``long_docs`` strategies).

A window is the passage's text between the first character of its first token and the last
character of its last token, so each window is itself a passage: it is scored (and cached,
keyed on its text) like any other.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any


def window_spans(n_tokens: int, tokens: int, stride: int) -> list[tuple[int, int]]:
    """Token ranges [start, stop) of windows of ``tokens`` tokens starting every ``stride``
    tokens, the last one reaching the end; one (possibly empty) window for a short passage.

    Example:
        >>> window_spans(10, 4, 3)
        [(0, 4), (3, 7), (6, 10)]
    """
    if tokens <= 0 or stride <= 0:
        raise ValueError("tokens and stride must be positive")
    if n_tokens <= tokens:
        return [(0, n_tokens)]
    spans = []
    start = 0
    while True:
        stop = min(start + tokens, n_tokens)
        spans.append((start, stop))
        if stop >= n_tokens:
            return spans
        start += stride


def passage_windows(tokenizer: Any, texts: Sequence[str], tokens: int, stride: int,
                    first_only: bool = False) -> list[list[str]]:
    """Each text's windows (see :func:`window_spans`), as substrings of the text.

    Args:
        tokenizer: a Hugging Face fast tokenizer (its Rust ``backend_tokenizer`` is copied, so
            the model's own truncation and padding settings stay as they are).
        first_only: keep each text's first window only (``firstp``).
    """
    backend = copy.deepcopy(getattr(tokenizer, "backend_tokenizer", tokenizer))
    backend.no_truncation()
    backend.no_padding()
    encodings = backend.encode_batch(list(texts), add_special_tokens=False)
    out: list[list[str]] = []
    for text, enc in zip(texts, encodings, strict=True):
        offsets = [o for o in enc.offsets if o[1] > o[0]] or [(0, len(text))]
        spans = window_spans(len(offsets), tokens, stride)
        if first_only:
            spans = spans[:1]
        out.append([text[offsets[a][0]:offsets[b - 1][1]] if b > a else text
                    for a, b in spans])
    return out
