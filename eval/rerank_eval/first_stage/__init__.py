"""First stages produce the shortlist rerankers rescore; a new one is one class here."""

from __future__ import annotations

from rerank_eval.first_stage.base import FirstStage
from rerank_eval.first_stage.bm25 import BM25
from rerank_eval.first_stage.dense import Dense
from rerank_eval.first_stage.hybrid import Hybrid
from rerank_eval.first_stage.run_file import RunFile

FIRST_STAGES: dict[str, type[FirstStage]] = {
    cls.key: cls for cls in (BM25, Dense, Hybrid, RunFile)
}

__all__ = ["BM25", "FIRST_STAGES", "Dense", "FirstStage", "Hybrid", "RunFile"]
