"""First stages produce the shortlist rerankers rescore; a new one is one class (with its
``Params`` model) added to FIRST_STAGES; the config's ``first_stage:`` keys come from it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rerank_eval.first_stage.base import FirstStage, FirstStageParams
from rerank_eval.first_stage.bm25 import BM25
from rerank_eval.first_stage.config import FirstStageChoice, FirstStageSection, choice_models
from rerank_eval.first_stage.dense import Dense
from rerank_eval.first_stage.hybrid import Hybrid, HybridParams
from rerank_eval.first_stage.run_file import RunFile

FIRST_STAGES: dict[str, type[FirstStage]] = {
    cls.key: cls for cls in (BM25, Dense, Hybrid, RunFile)
}

#: ``{<kind>: <params>}`` (a hybrid's components) and the ``first_stage:`` section (+ depth).
if TYPE_CHECKING:  # mypy cannot see registry-built models: type them as their base classes
    FirstStageSpec = FirstStageChoice
    FirstStageConfig = FirstStageSection
else:
    FirstStageSpec, FirstStageConfig = choice_models(FIRST_STAGES)
HybridParams.model_rebuild(_types_namespace={"FirstStageSpec": FirstStageSpec})
FirstStageSpec.model_rebuild()
FirstStageConfig.model_rebuild()


def build_first_stage(kind: str, params: FirstStageParams | Mapping[str, Any] | None, *,
                      base_dir: Path, field: str | None = None) -> FirstStage:
    """The first stage of kind ``kind`` (a registered key)."""
    return FIRST_STAGES[kind](params, base_dir=base_dir, field=field)


__all__ = ["BM25", "FIRST_STAGES", "Dense", "FirstStage", "FirstStageChoice", "FirstStageConfig",
           "FirstStageParams", "FirstStageSection", "FirstStageSpec", "Hybrid", "RunFile",
           "build_first_stage"]
