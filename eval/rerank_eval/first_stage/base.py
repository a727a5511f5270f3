"""The first-stage interface: produce a candidate Run for every query of a dataset."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from rerank_eval.datasets import Dataset
from rerank_eval.params import Params
from rerank_eval.runs import Run


class FirstStageParams(Params):
    """Base of a first stage's parameters (the value under its key in ``first_stage:``)."""


class FirstStage:
    """Retrieves up to ``depth`` candidates per query.

    Subclasses declare ``key`` (the config key), ``Params`` (their parameters: a pydantic
    model with defaults) and implement :meth:`retrieve`. ``field`` is where the config names
    this stage (a hybrid's components are ``first_stage.hybrid.of[i].<key>``), so errors point
    at the right place. Progress goes to the module loggers
    (``logging.getLogger(__name__)``).
    """

    key: ClassVar[str]
    Params: ClassVar[type[FirstStageParams]] = FirstStageParams

    def __init__(self, params: FirstStageParams | Mapping[str, Any] | None = None, *,
                 base_dir: Path, field: str | None = None):
        """``params``: this stage's ``Params`` (a mapping, or a shorthand such as a run
        file's path, is validated into one, errors naming ``field``)."""
        self.field = field or f"first_stage.{self.key}"
        self.params = self.Params.coerce(params, where=self.field, base_dir=base_dir)
        self.base_dir = base_dir

    @property
    def name(self) -> str:
        return self.key

    def describe(self) -> dict[str, Any]:
        return {"kind": self.key, **self.params.model_dump()}

    def retrieve(self, dataset: Dataset, depth: int) -> Run:
        raise NotImplementedError

    def query_searcher(self, dataset: Dataset, depth: int) -> Callable[[str], Any] | None:
        """A function answering one query text at a time (for per-query latency), reusing the
        index :meth:`retrieve` built; None when the stage cannot be timed per query (e.g. a
        precomputed run file)."""
        return None

    def close(self) -> None:
        """Free models and indexes."""
