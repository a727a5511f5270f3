"""The ``first_stage:`` section: exactly one first-stage key (its value: that stage's params)
and the ``depth`` it retrieves. The models are generated from the registry
(``first_stage/__init__.py``), so a new first stage needs no change here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, PrivateAttr, create_model

from rerank_eval.first_stage.base import FirstStageParams
from rerank_eval.params import Params, PositiveInt, field_error

if TYPE_CHECKING:
    from rerank_eval.first_stage.base import FirstStage


class FirstStageChoice(Params):
    """A mapping with exactly one first-stage key, e.g. ``{bm25: {k1: 0.9}}``."""

    unknown_noun = "first stage"
    kinds: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def _check_raw(cls, data: dict[Any, Any]) -> dict[Any, Any]:
        present = [k for k in cls.kinds if k in data]
        if len(present) != 1:
            raise field_error(f"give exactly one of {', '.join(cls.kinds)}")
        if data[present[0]] is None:  # `bm25:` alone: the defaults
            data = {**data, present[0]: {}}
        return data

    @property
    def kind(self) -> str:
        return next(k for k in self.kinds if getattr(self, k) is not None)

    @property
    def params(self) -> FirstStageParams:
        value: FirstStageParams = getattr(self, self.kind)
        return value


class FirstStageSection(FirstStageChoice):
    """The first stage: exactly one of its kinds as key (the value: its parameters), and the
    depth it retrieves, e.g. ``{bm25: {k1: 0.9, b: 0.4}, depth: 100}``."""

    unknown_noun = "key"

    depth: PositiveInt = 100
    """Candidates retrieved per query; every reranking depth must be <= this."""

    _where: str = PrivateAttr("first_stage")

    @property
    def where(self) -> str:
        """Where the config names this section (``first_stage``, ``datasets[1].first_stage``)."""
        return self._where


def choice_models(registry: dict[str, type[FirstStage]]
                  ) -> tuple[type[FirstStageChoice], type[FirstStageSection]]:
    """(one first stage, as in a hybrid's ``of`` list; the ``first_stage:`` section), with a
    key per registered first stage."""
    kinds = {key: (cls.Params | None, Field(None, description=(cls.__doc__ or "").split("\n")[0]))
             for key, cls in registry.items()}
    spec = create_model("FirstStageSpec", __base__=FirstStageChoice,  # type: ignore[call-overload]
                        __module__=__name__, **kinds)
    section = create_model("FirstStageConfig", __base__=FirstStageSection,  # type: ignore[call-overload]
                           __module__=__name__, **kinds)
    for model in (spec, section):
        model.kinds = tuple(registry)
        globals()[model.__name__] = model  # importable by name (pickle)
    return spec, section
