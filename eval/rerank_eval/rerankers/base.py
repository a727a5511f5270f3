"""The reranker interface: score (query, passage) pairs; higher means more relevant.

A backend is one subclass with ``kind``, ``Params`` (its config keys: a pydantic model with
defaults, validated when the config is read) and :meth:`score`, registered in
``rerankers/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import model_validator

from rerank_eval.errors import InputError
from rerank_eval.params import (
    Params,
    PositiveInt,
    check_before,
    field_error,
    is_non_empty_list,
)

LONG_DOC_STRATEGIES = ("first", "firstp", "maxp", "sump")


class RerankerParams(Params):
    """Base of a reranker kind's parameters: the keys of its ``rerankers:`` entry besides
    ``name`` and ``kind``."""


class LongDocsConfig(Params):
    """How a pointwise reranker scores passages longer than its window: ``first`` truncates
    (the default), ``firstp`` scores the first window of ``passage_tokens`` tokens only,
    ``maxp``/``sump`` score overlapping windows (a new one every ``stride`` tokens) and take
    the max/sum of their scores."""

    strategy: Literal["first", "firstp", "maxp", "sump"] = "first"
    passage_tokens: PositiveInt = 256
    """Passage tokens per window (the query and special tokens come on top)."""
    stride: PositiveInt = 128
    """Tokens between the starts of consecutive windows."""

    @model_validator(mode="after")
    def _stride_fits(self) -> LongDocsConfig:
        if self.stride > self.passage_tokens:
            raise field_error(f"{self.stride} exceeds passage_tokens {self.passage_tokens} "
                              "(windows would skip text)", "stride")
        return self


class ContextParams(RerankerParams):
    """Keys of pointwise rerankers that score a (query, passage) pair within a token window:
    ``max_lengths`` (score the shortlist once per context length) and ``long_docs``."""

    max_lengths: Annotated[list[PositiveInt] | None, check_before(
        lambda v: v is None or is_non_empty_list(v),
        "expected a non-empty list of token counts, e.g. [128, 256, 512]")] = None
    """Also score the shortlist at each of these max_length values (quality, truncation,
    latency and throughput per length; the recommendation picks depth and length)."""
    long_docs: LongDocsConfig | None = None
    """Passages longer than the window: first (truncate) | firstp | maxp | sump."""


@dataclass
class ScoringStats:
    """Counters a backend keeps while scoring (reported per reranker)."""

    pairs_scored: int = 0
    pairs_truncated: int = 0
    pairs_from_cache: int = 0
    # Wall seconds spent waiting out failures (retries, backoff), excluded from throughput.
    retry_wait_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Reranker:
    """Scores (query, passage) pairs. Subclasses implement :meth:`score`."""

    kind: ClassVar[str]
    Params: ClassVar[type[RerankerParams]] = RerankerParams
    # Per-query latency probes re-run the model on a sample; False where every call is billed
    # (hosted APIs), whose per-request latency comes from the scoring pass itself.
    latency_probes: ClassVar[bool] = True
    # Params that change a score (the rest, like batch_size or device, do not). None: all.
    score_params: ClassVar[tuple[str, ...] | None] = None
    # What was applied to the model's raw output (its logit) to give the scores: "identity"
    # or "sigmoid". Agreement between backends compares scores after mapping both to one
    # scale (``analysis.agreement``).
    score_transform: ClassVar[str] = "identity"
    # Pointwise kinds with a token window declare ``max_lengths``/``long_docs`` support by
    # taking ContextParams and implementing :meth:`passage_windows`.
    supports_context: ClassVar[bool] = False

    def __init__(self, name: str, params: RerankerParams | Mapping[str, Any] | None = None, *,
                 base_dir: Path):
        """``params``: this kind's ``Params`` (a mapping is validated into one, errors
        naming ``rerankers[<name>]``)."""
        self.name = name
        self.params = self.Params.coerce(params, where=f"rerankers[{name}]", base_dir=base_dir)
        self.base_dir = base_dir
        self.stats = ScoringStats()
        # Which pairs of the last score() call were truncated (bool mask), if the backend knows.
        self.last_truncated: np.ndarray | None = None
        # Set by the scoring pass around a score() call: ``on_scored(start, scores)`` hands over
        # the scores of pairs[start:start + len(scores)] as soon as they are known, so a backend
        # that pays per request (hosted APIs) gets every answer stored in the score cache
        # before a later request can fail. A backend that scores in one go need not call it.
        self.on_scored: Callable[[int, np.ndarray], None] | None = None

    @property
    def model_id(self) -> str:
        return str(getattr(self.params, "model", ""))

    def describe(self) -> dict[str, Any]:
        """What was run, for results.json."""
        return {"name": self.name, "kind": self.kind, "model": self.model_id}

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes a score (the score-cache key): the backend kind and the
        ``score_params``; backends with local weights add a content hash of them."""
        keys = sorted(self.Params.model_fields) if self.score_params is None else self.score_params
        return {"kind": self.kind, **{k: getattr(self.params, k) for k in keys}}

    def preflight(self) -> None:
        """Fail now, in seconds, if this reranker cannot run (a model that cannot be found or
        fetched, a missing key): the runner calls it for every reranker before any work."""

    def queries_truncated(self, queries: Sequence[str]) -> int | None:
        """How many of ``queries`` this reranker cuts before scoring (a cross-encoder keeps at
        least half its window for the passage); None when it cannot tell (hosted APIs)."""
        return None

    def latency_warmup_rounds(self) -> int:
        """Untimed passes over every latency probe before any is timed: 0, or more for a
        backend that prepares per input shape on first sight (CUDA graphs are captured the
        second time a shape is seen), so timings show the prepared path a service would run."""
        return 0

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Relevance scores for ``pairs`` in input order (float64)."""
        raise NotImplementedError

    def variant(self, **updates: Any) -> Reranker:
        """The same reranker with some params changed (e.g. ``max_length``), loaded anew."""
        return type(self)(self.name, self.params.model_copy(update=updates),
                          base_dir=self.base_dir)

    def passage_windows(self, texts: Sequence[str], tokens: int, stride: int,
                        first_only: bool = False) -> list[list[str]]:
        """Each passage split into windows of ``tokens`` of this model's tokens, a new one
        every ``stride`` (``supports_context`` kinds only)."""
        raise NotImplementedError(f"{self.kind} does not split passages into windows")

    def _score_local(self, scorer: Any, pairs: Sequence[tuple[str, str]],
                     dtype: object) -> np.ndarray:
        """A local model's scores of ``pairs`` through ``scorer`` (``score(pairs)`` returning
        scores and the number truncated; ``last_truncated``), counted in ``stats``; refused
        when any is not finite (the model overflows ``dtype``)."""
        scores, truncated = scorer.score(pairs)
        if not np.isfinite(scores).all():
            raise InputError(
                f"rerankers[{self.name}].dtype: {dtype} gave non-finite scores "
                f"for {int((~np.isfinite(scores)).sum())} of {len(pairs)} pairs (the model "
                "overflows this precision); use dtype: bfloat16 or float32")
        self.last_truncated = scorer.last_truncated
        self.stats.pairs_scored += len(pairs)
        self.stats.pairs_truncated += truncated
        return scores

    def close(self) -> None:
        """Free resources (models, sessions)."""
