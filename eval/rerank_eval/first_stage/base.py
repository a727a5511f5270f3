"""The first-stage interface: produce a candidate Run for every query of a dataset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from rerank_eval.datasets import Dataset
from rerank_eval.errors import InputError
from rerank_eval.runs import Run


class FirstStage:
    """Retrieves up to ``depth`` candidates per query.

    Subclasses declare ``key`` (the config key), ``allowed`` (their parameter names with
    defaults) and implement :meth:`retrieve`. ``field`` is where the config names this stage
    (a hybrid's components are ``first_stage.hybrid.of[i].<key>``), so errors point at the right
    place. Progress goes to the module loggers (``logging.getLogger(__name__)``).
    """

    key: ClassVar[str]
    allowed: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: dict[str, Any] | None, *, base_dir: Path,
                 field: str | None = None):
        self.field = field or f"first_stage.{self.key}"
        if params is not None and not isinstance(params, dict):
            raise InputError(f"{self.field}: expected a mapping of parameters, "
                             f"got {type(params).__name__}")
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.allowed))
        if unknown:
            raise InputError(
                f"{self.field}: unknown key {unknown[0]!r} "
                f"(allowed: {', '.join(sorted(self.allowed)) or 'none'})"
            )
        self.params = {**self.allowed, **params}
        self.base_dir = base_dir

    @property
    def name(self) -> str:
        return self.key

    def describe(self) -> dict[str, Any]:
        return {"kind": self.key, **self.params}

    def retrieve(self, dataset: Dataset, depth: int) -> Run:
        raise NotImplementedError

    def query_searcher(self, dataset: Dataset, depth: int) -> Callable[[str], Any] | None:
        """A function answering one query text at a time (for per-query latency), reusing the
        index :meth:`retrieve` built; None when the stage cannot be timed per query (e.g. a
        precomputed run file)."""
        return None

    def close(self) -> None:
        """Free models and indexes."""
