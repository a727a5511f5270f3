"""The sliding window of RankGPT over one query's top-d, back to front.

Windows of ``window`` passages start at ``d - window`` and move up by ``stride`` until one
starts at rank 0 (``d <= window``: a single window over all d). Each window's answer reorders
its slice in place, so what it ranks best is carried into the next window up: with ``stride``
<= ``window - k`` a model that orders every window correctly brings the best k of all d to
the top in one pass (window 20, stride 10, d 100: 9 windows per query, the best 10 first).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence


def window_spans(depth: int, window: int, stride: int) -> list[tuple[int, int]]:
    """``[start, end)`` of every window of one pass over the top ``depth``, in order."""
    if depth <= 0:
        return []
    spans: list[tuple[int, int]] = []
    end = depth
    start = max(depth - window, 0)
    while True:
        spans.append((start, end))
        if start == 0:
            return spans
        end -= stride
        start = max(start - stride, 0)


def slide(items: Sequence[int], spans: Sequence[tuple[int, int]],
          rank_window: Callable[[int, list[int]], Sequence[int]]) -> list[int]:
    """``items`` after every window of ``spans``: ``rank_window(number, window_items)``
    returns the window's permutation (positions in ``window_items``, best first)."""
    order = list(items)
    for number, (start, end) in enumerate(spans):
        part = order[start:end]
        perm = rank_window(number, part)
        order[start:end] = [part[i] for i in perm]
    return order


def shuffled(n: int, seed: int, *key: object) -> list[int]:
    """A permutation of range(n) fixed by ``seed`` and ``key`` (the query and window): what
    ``shuffle_input`` shows the model instead of the first stage's order."""
    rng = random.Random(f"{seed}|" + "|".join(map(str, key)))
    perm = list(range(n))
    rng.shuffle(perm)
    return perm
