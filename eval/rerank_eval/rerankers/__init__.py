"""Reranker backends. A new backend is one Reranker subclass added to RERANKERS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rerank_eval.errors import InputError
from rerank_eval.rerankers.base import Reranker, ScoringStats
from rerank_eval.rerankers.bi_encoder import BiEncoder
from rerank_eval.rerankers.cross_encoder import CrossEncoder
from rerank_eval.rerankers.hosted import HOSTED_RERANKERS

RERANKERS: dict[str, type[Reranker]] = {
    cls.kind: cls for cls in (CrossEncoder, BiEncoder, *HOSTED_RERANKERS)}


def build_reranker(name: str, kind: str, params: dict[str, Any], *, base_dir: Path) -> Reranker:
    if kind not in RERANKERS:
        raise InputError(
            f"rerankers[{name}].kind: unknown kind {kind!r} (available: {', '.join(RERANKERS)})"
        )
    return RERANKERS[kind](name, params, base_dir=base_dir)


__all__ = ["RERANKERS", "Reranker", "ScoringStats", "build_reranker"]
