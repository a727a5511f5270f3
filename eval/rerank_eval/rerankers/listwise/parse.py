"""Reading a listwise model's answer ("[2] > [1] > [3]") into a permutation, with repair.

The repair follows castorini/rank_llm (``listwise_rankllm.py``: ``_clean_response``,
``_remove_duplicate``, ``receive_permutation``): a think block is dropped, every number in
the rest is read as an identifier, repeats and identifiers outside 1..n are dropped, and the
identifiers never named are appended in their input order. An answer that names no valid
identifier at all keeps the window's input order. Each defect is counted (per window), so a
results file says how often a model needed the repair instead of hiding it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_THINK_CLOSED = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_THINK_END = re.compile(r"^.*</think>", re.DOTALL | re.IGNORECASE)  # an opening tag in the prompt
_THINK_OPEN = re.compile(r"<think>.*$", re.DOTALL | re.IGNORECASE)  # cut off mid-thought
_NUMBER = re.compile(r"\d+")
_STRICT = re.compile(r"\s*\[\d+\](\s*>\s*\[\d+\])*\s*")


@dataclass(frozen=True)
class ParsedAnswer:
    """A window's permutation (0-based input positions, best first) and what was repaired."""

    order: tuple[int, ...]
    wrong_format: bool  # not just "[i] > [j] > ..." (prose, other separators, no ids)
    repetition: bool  # an identifier named more than once
    out_of_range: bool  # an identifier outside 1..n
    missing: bool  # some identifiers never named (appended in input order)
    kept_order: bool  # no valid identifier at all: the input order is kept

    @property
    def ok(self) -> bool:
        return not (self.wrong_format or self.repetition or self.out_of_range or self.missing
                    or self.kept_order)


def strip_think(text: str) -> str:
    """The answer without reasoning: closed ``<think>...</think>`` blocks, anything up to a
    lone ``</think>`` (the opening tag was part of the prompt) and an unclosed block."""
    text = _THINK_CLOSED.sub(" ", text)
    text = _THINK_END.sub(" ", text)
    return _THINK_OPEN.sub(" ", text)


def parse_answer(text: str, n: int) -> ParsedAnswer:
    """The permutation of ``n`` passages that ``text`` names (see the module docstring)."""
    body = strip_think(text)
    named = [int(m) for m in _NUMBER.findall(body)]
    seen: set[int] = set()
    order: list[int] = []
    repetition = out_of_range = False
    for ident in named:
        if not 1 <= ident <= n:
            out_of_range = True
        elif ident in seen:
            repetition = True
        else:
            seen.add(ident)
            order.append(ident - 1)
    wrong_format = _STRICT.fullmatch(body) is None
    if not order:
        return ParsedAnswer(tuple(range(n)), wrong_format=True, repetition=repetition,
                            out_of_range=out_of_range, missing=False, kept_order=True)
    missing = len(order) < n
    order += [i for i in range(n) if i + 1 not in seen]
    return ParsedAnswer(tuple(order), wrong_format=wrong_format, repetition=repetition,
                        out_of_range=out_of_range, missing=missing, kept_order=False)
