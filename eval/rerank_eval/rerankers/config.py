"""A ``rerankers:`` entry: ``name``, ``kind`` and that kind's parameters, flat as written.

One model per registered kind (its ``Params`` plus ``name`` and ``kind``) is generated from
the registry, and the entries form a union discriminated by ``kind``: a new kind needs no
change here.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field, PrivateAttr, create_model

from rerank_eval.params import Bool, Name, Params, field_error, type_name
from rerank_eval.rerankers.base import RerankerParams

if TYPE_CHECKING:
    from rerank_eval.rerankers.base import Reranker


class RerankerEntry(Params):
    """One reranker to evaluate: a unique ``name`` (its results, runs and score files are
    named after it), its ``kind`` and that kind's parameters."""

    name: Name
    """Unique among the rerankers; no spaces or slashes."""
    kind: str
    optional: Bool = False
    """When its model cannot be had (not a local folder, not in the hub cache, hub not
    reachable), skip it with one log line (results.json ``skipped``) instead of failing."""
    sanity: Bool | None = None
    """Score the obvious sanity probes with it first (default: the config's sanity_check for
    local models; false for hosted APIs, where the 12 probe documents are billed)."""

    _params: RerankerParams | None = PrivateAttr(None)

    @property
    def params(self) -> RerankerParams:
        """The kind's parameters alone (what the reranker class receives)."""
        if self._params is None:
            model = next(b for b in type(self).__mro__[1:]
                         if issubclass(b, RerankerParams) and not issubclass(b, RerankerEntry))
            values = {k: getattr(self, k) for k in model.model_fields}
            self._params = model.model_construct(
                _fields_set=self.model_fields_set & set(model.model_fields), **values)
        return self._params


def entry_model(cls: type[Reranker]) -> type[RerankerEntry]:
    """The config entry of reranker class ``cls``: its ``Params`` + ``name`` + ``kind``."""
    # The ignores: create_model's stubs take bases of one model type and a static field type;
    # these come from the registry at runtime.
    return create_model(  # type: ignore[no-any-return, call-overload]
        f"{cls.__name__}Config", __base__=(cls.Params, RerankerEntry),  # type: ignore[arg-type]
        __module__=__name__, __doc__=cls.Params.__doc__,
        kind=(Literal[cls.kind], Field(description=f"``{cls.kind}``")))  # type: ignore[arg-type]


def _entries_check(kinds: list[str]) -> Any:
    """Before the entries themselves: each is a mapping with a known kind, names unique."""
    def check(value: Any) -> Any:
        if not isinstance(value, list):
            return value
        names: set[str] = set()
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise field_error(f"expected a mapping with name and kind, got "
                                  f"{type_name(item)}", i)
            name = item.get("name")
            if isinstance(name, str):
                if name in names:
                    raise field_error(f"duplicate name {name!r}", i, "name")
                names.add(name)
            kind = item.get("kind")
            if kind is None:
                raise field_error(f"required (one of {', '.join(kinds)})", i, "kind")
            if not isinstance(kind, str) or kind not in kinds:
                close = difflib.get_close_matches(str(kind), kinds, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"available: {', '.join(kinds)}"
                raise field_error(f"unknown kind {kind!r} ({hint})", i, "kind")
        return value

    return BeforeValidator(check)


def rerankers_type(registry: dict[str, type[Reranker]]) -> Any:
    """``list[<entry of any registered kind>]``, discriminated by ``kind``."""
    entries = tuple(entry_model(cls) for cls in registry.values())
    for entry in entries:  # importable by name (pickle)
        globals()[entry.__name__] = entry
    # A union of models built at runtime, which mypy cannot follow (typed as
    # list[RerankerEntry] for mypy in rerankers/__init__.py).
    union = Annotated[Union[entries], Field(discriminator="kind")]  # type: ignore[valid-type]  # noqa: UP007
    return Annotated[list[union],  # type: ignore[valid-type]
                     _entries_check(list(registry))]
