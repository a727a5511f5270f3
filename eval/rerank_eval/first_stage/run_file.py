"""A precomputed TREC run file as the first stage."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr, model_serializer, model_validator

from rerank_eval.datasets import Dataset
from rerank_eval.errors import InputError
from rerank_eval.first_stage.base import FirstStage, FirstStageParams
from rerank_eval.params import NonEmptyStr
from rerank_eval.runs import Run, read_trec_run


class RunFileParams(FirstStageParams):
    """``run``: a TREC run file (``run: PATH`` is short for ``run: {path: PATH}``)."""

    shorthand_schema = {"type": "string", "description": "The run file's path."}

    path: NonEmptyStr
    """The run file, relative to the config's folder."""

    _as_path: bool = PrivateAttr(False)  # written as the bare path: dumped as it was written

    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"path": os.fspath(data)} if isinstance(data, (str, os.PathLike)) else data

    @model_validator(mode="wrap")
    @classmethod
    def _remember_form(cls, data: Any, handler: Any) -> RunFileParams:
        params: RunFileParams = handler(data)
        params._as_path = isinstance(data, (str, os.PathLike))
        return params

    @model_serializer(mode="wrap")
    def _as_written(self, handler: Any) -> Any:
        return self.path if self._as_path else handler(self)


class RunFile(FirstStage):
    """Candidates read from a TREC run (``qid Q0 docid rank score tag``)."""

    key = "run"
    Params = RunFileParams
    params: RunFileParams

    def __init__(self, params: RunFileParams | Mapping[str, Any] | str | os.PathLike[str], *,
                 base_dir: Path, field: str | None = None):
        super().__init__(params, base_dir=base_dir, field=field)  # type: ignore[arg-type]
        path = Path(os.path.expanduser(self.params.path))
        self.path = path if path.is_absolute() else base_dir / path

    @property
    def name(self) -> str:
        return f"run:{self.path.stem}"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.key, "path": str(self.path)}

    def retrieve(self, dataset: Dataset, depth: int) -> Run:
        run = read_trec_run(self.path, name=self.name)
        unknown_queries = sorted(q for q in run.ranking if q not in dataset.queries
                                 and q not in dataset.qrels)
        if unknown_queries:
            raise InputError(
                f"run names {len(unknown_queries)} queries that are not in dataset "
                f"{dataset.id} (e.g. {unknown_queries[0]!r})",
                path=self.path,
            )
        unknown_docs = {d for docs in run.ranking.values() for d in docs if d not in dataset.corpus}
        if unknown_docs:
            example = sorted(unknown_docs)[0]
            raise InputError(
                f"run names {len(unknown_docs)} documents that are not in the corpus of "
                f"{dataset.id} (e.g. {example!r})",
                path=self.path,
            )
        judged = {q: docs for q, docs in run.ranking.items() if q in dataset.queries}
        return Run(self.name, {q: d[:depth] for q, d in judged.items()},
                   {q: {d: run.scores[q][d] for d in docs[:depth]} for q, docs in judged.items()})
