"""Hybrid first stage: several first stages fused with ranx (``ranx.fuse``).

Each component retrieves ``component_depth`` candidates (default: the hybrid's depth); the
fused scores are ordered with the project's tie rule and cut at the hybrid depth. Rank-based
methods (rrf, isr, borda, ...) receive rank-derived scores, so ranx sees each component in
exactly the order the harness decided; score-based methods (sum, mnz, wsum, ...) receive the
raw scores, normalised per query (``norm``, default min-max).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from rerank_eval.datasets import Dataset
from rerank_eval.first_stage.base import FirstStage, FirstStageParams
from rerank_eval.params import PositiveInt, Str, check_before, field_error, on_error
from rerank_eval.runs import Run

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from rerank_eval.first_stage.config import FirstStageChoice as FirstStageSpec

# Spellings users write -> ranx's method names.
METHOD_ALIASES = {
    "combsum": "sum", "comb_sum": "sum", "combmnz": "mnz", "comb_mnz": "mnz",
    "combmax": "max", "combmin": "min", "combmed": "med", "combanz": "anz",
    "combgmnz": "gmnz", "weighted_sum": "wsum", "borda": "bordafuse",
}
RANK_BASED = {"rrf", "isr", "log_isr", "logn_isr", "rbc", "bordafuse", "w_bordafuse",
              "condorcet", "w_condorcet"}
SCORE_BASED = {"sum", "mnz", "max", "min", "med", "anz", "gmnz", "wsum", "wmnz", "mixed"}
# ranx methods that must first be trained on qrels (ranx.optimize_fusion): not offered here,
# since fitting them on the evaluated queries would leak the answers into the first stage.
SUPERVISED = {"bayesfuse", "mapfuse", "posfuse", "probfuse", "segfuse", "slidefuse"}
NORMS = ("min-max", "max", "sum", "zmuv", "rank", "borda", "min-max-inverted")


def canonical_method(method: str) -> str:
    """ranx's name for a fusion method as the user spelled it."""
    return METHOD_ALIASES.get(method.lower(), method.lower())


class HybridParams(FirstStageParams):
    """``hybrid``: several first stages fused with ranx, e.g. ``{of: [{bm25: {}}, {dense:
    {model: packaged:all-minilm-l6-v2}}], method: rrf, params: {k: 60}}``."""

    of: Annotated[list[FirstStageSpec], Field(min_length=2), check_before(
        lambda v: isinstance(v, list) and len(v) >= 2,
        "expected a list of at least two first stages, "
        "e.g. [{bm25: {}}, {dense: {model: packaged:all-minilm-l6-v2}}]")]
    """The first stages to fuse, each a mapping with one first-stage key."""
    method: Str = "rrf"
    """An unsupervised ranx fusion method: rrf, isr, bordafuse, ..., or a score-based one
    (sum/combsum, mnz/combmnz, wsum, ...)."""
    params: dict[str, Any] | None = None
    """The method's parameters, e.g. {k: 60} for rrf, {weights: [...]} for wsum."""
    norm: Annotated[Literal[NORMS] | None, on_error(  # type: ignore[valid-type]
        f"unknown normalisation {{value}} (use one of {', '.join(NORMS)})")] = None
    """Score normalisation for score-based methods (default min-max)."""
    component_depth: PositiveInt | None = None
    """Candidates each component retrieves (default: the hybrid's depth)."""

    @field_validator("method", mode="after")
    @classmethod
    def _known_method(cls, raw: str) -> str:
        method = canonical_method(raw)
        if method in SUPERVISED:
            raise field_error(f"{raw!r} must be trained on qrels first; not supported (use an "
                              "unsupervised method such as rrf or wsum)")
        if method not in RANK_BASED | SCORE_BASED:
            known = sorted(RANK_BASED | SCORE_BASED | {"combsum", "combmnz"})
            raise field_error(f"unknown fusion method {raw!r} (use one of {', '.join(known)})")
        return raw

    @model_validator(mode="after")
    def _fusion_params(self) -> HybridParams:
        """``params`` must be what the method takes: ranx's signature decides."""
        from ranx.fusion import fusion_switch

        method = canonical_method(self.method)
        given = self.params or {}
        signature = inspect.signature(fusion_switch(method)).parameters
        accepted = {k: p for k, p in signature.items() if k not in {"runs", "name"}}
        unknown = [k for k in given if k not in accepted]
        if unknown:
            raise field_error(f"unknown key {unknown[0]!r} for method {method!r} "
                              f"(allowed: {', '.join(sorted(accepted)) or 'none'})", "params")
        missing = [k for k, p in accepted.items()
                   if p.default is inspect.Parameter.empty and k not in given]
        if missing:
            raise field_error(f"method {method!r} needs {missing[0]!r}", "params")
        for key, value in given.items():
            if key == "weights":
                if (not isinstance(value, list) or len(value) != len(self.of)
                        or not all(_is_number(w) for w in value)):
                    raise field_error(f"expected {len(self.of)} numbers, one per component",
                                      "params", "weights")
            elif not _is_number(value):
                raise field_error(f"expected a number, got {value!r}", "params", key)
        return self


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Hybrid(FirstStage):
    """Fuses the runs of several first stages (see :class:`HybridParams`)."""

    key = "hybrid"
    Params = HybridParams
    params: HybridParams

    def __init__(self, params: HybridParams | Mapping[str, Any] | None, *, base_dir: Path,
                 field: str | None = None):
        from rerank_eval.first_stage import build_first_stage

        super().__init__(params, base_dir=base_dir, field=field)
        self.components = [
            build_first_stage(spec.kind, spec.params, base_dir=base_dir,
                              field=f"{self.field}.of[{i}].{spec.kind}")
            for i, spec in enumerate(self.params.of)]
        self.method = canonical_method(self.params.method)
        self.fusion_params = dict(self.params.params or {})
        self.norm = self.params.norm or (None if self.method in RANK_BASED else "min-max")
        self._component_runs: list[Run] = []

    # -- retrieval --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"hybrid-{self.method}"

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.key,
            "fusion": "ranx.fuse",
            "method": self.method,
            "method_as_written": self.params.method,
            "params": self.fusion_params,
            "norm": self.norm,
            "component_input": ("rank-derived scores (component order per the tie rule)"
                                if self.method in RANK_BASED else "raw scores"),
            "component_depth": self.params.component_depth,
            "components": [c.describe() for c in self.components],
        }

    def retrieve(self, dataset: Dataset, depth: int) -> Run:
        component_depth = int(self.params.component_depth or depth)
        self._component_runs = []
        for component in self.components:
            t0 = time.perf_counter()
            self._component_runs.append(component.retrieve(dataset, component_depth))
            logger.info(f"hybrid: component {component.name} retrieved "
                        f"top-{component_depth} in {time.perf_counter() - t0:.1f}s")
        return self.fuse(self._component_runs, list(dataset.queries), depth)

    def fuse(self, runs: Sequence[Run], query_ids: Sequence[str], depth: int) -> Run:
        """Fused run over ``query_ids``, each query cut at ``depth``."""
        # ranx needs every fused run to hold the same non-empty queries, so queries are grouped
        # by which components returned anything for them.
        groups: dict[tuple[int, ...], list[str]] = {}
        for q in query_ids:
            present = tuple(i for i, r in enumerate(runs) if r.ranking.get(q))
            groups.setdefault(present, []).append(q)
        scores: dict[str, dict[str, float]] = {q: {} for q in query_ids}
        for present, qs in groups.items():
            if len(present) == 1:
                # One component alone: every fusion method keeps its order.
                only = runs[present[0]]
                for q in qs:
                    docs = only.ranking[q]
                    scores[q] = {d: float(len(docs) - i) for i, d in enumerate(docs)}
            elif present:
                scores.update(self._ranx_fuse([runs[i] for i in present], qs, present))
        fused = Run.from_scores(self.name, scores)
        return fused.top(depth)

    def _ranx_fuse(self, runs: Sequence[Run], query_ids: Sequence[str],
                   present: tuple[int, ...]) -> dict[str, dict[str, float]]:
        from ranx import Run as RanxRun
        from ranx import fuse

        from rerank_eval.metrics.jit import quiet_jit

        params = dict(self.fusion_params)
        if "weights" in params:
            params["weights"] = [params["weights"][i] for i in present]
        ranx_runs = [RanxRun({q: self._ranx_input(run, q) for q in query_ids}, name=run.name)
                     for run in runs]
        with quiet_jit():
            fused = fuse(ranx_runs, norm=self.norm, method=self.method, params=params)
        return {q: {d: float(s) for d, s in docs.items()} for q, docs in fused.to_dict().items()}

    def _ranx_input(self, run: Run, query_id: str) -> dict[str, float]:
        docs = run.ranking[query_id]
        if self.method in RANK_BASED:
            return {d: float(len(docs) - i) for i, d in enumerate(docs)}
        return {d: float(run.scores[query_id][d]) for d in docs}

    def query_searcher(self, dataset: Dataset, depth: int) -> Callable[[str], Any] | None:
        """Each component answering the query alone, one after the other, then fusing that
        query's component results."""
        component_depth = int(self.params.component_depth or depth)
        found = [c.query_searcher(dataset, component_depth) for c in self.components]
        searchers = [s for s in found if s is not None]
        if len(searchers) < len(found) or not self._component_runs:
            return None
        query_id = {text: q for q, text in dataset.queries.items()}

        def search(text: str) -> Run:
            for searcher in searchers:
                searcher(text)
            return self.fuse(self._component_runs, [query_id[text]], depth)

        return search

    def close(self) -> None:
        for component in self.components:
            component.close()
        self._component_runs = []
