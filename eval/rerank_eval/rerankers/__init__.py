"""Reranker backends. A new backend is one Reranker subclass (with its ``Params`` model)
added to RERANKERS; the config's ``rerankers:`` entries are generated from this registry."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rerank_eval.errors import InputError
from rerank_eval.rerankers.base import Reranker, RerankerParams, ScoringStats
from rerank_eval.rerankers.bi_encoder import BiEncoder
from rerank_eval.rerankers.causal_lm import CausalLM
from rerank_eval.rerankers.config import RerankerEntry, rerankers_type
from rerank_eval.rerankers.cross_encoder import CrossEncoder
from rerank_eval.rerankers.hosted import HOSTED_RERANKERS
from rerank_eval.rerankers.listwise import ListwiseReranker
from rerank_eval.rerankers.seq2seq import Seq2Seq

_KINDS: tuple[type[Reranker], ...] = (
    CrossEncoder, BiEncoder, CausalLM, Seq2Seq, *HOSTED_RERANKERS, ListwiseReranker)
RERANKERS: dict[str, type[Reranker]] = {cls.kind: cls for cls in _KINDS}

#: The type of the config's ``rerankers:`` list (entries discriminated by ``kind``).
if TYPE_CHECKING:  # mypy cannot see the registry-built union: type it as its base entry
    Rerankers = list[RerankerEntry]
else:
    Rerankers = rerankers_type(RERANKERS)


def build_reranker(name: str, kind: str, params: RerankerParams | Mapping[str, Any] | None, *,
                   base_dir: Path) -> Reranker:
    """The reranker of kind ``kind``; a mapping of ``params`` is validated by its Params."""
    if kind not in RERANKERS:
        raise InputError(
            f"rerankers[{name}].kind: unknown kind {kind!r} (available: {', '.join(RERANKERS)})"
        )
    return RERANKERS[kind](name, params, base_dir=base_dir)


__all__ = ["RERANKERS", "Reranker", "RerankerEntry", "RerankerParams", "Rerankers",
           "ScoringStats", "build_reranker"]
