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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rerank_eval.datasets import Dataset
from rerank_eval.errors import InputError
from rerank_eval.first_stage.base import FirstStage
from rerank_eval.runs import Run

logger = logging.getLogger(__name__)

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


class Hybrid(FirstStage):
    """``hybrid: {of: [{bm25: {}}, {dense: {model: ...}}], method: rrf, params: {k: 60}}``."""

    key = "hybrid"
    allowed: dict[str, Any] = {"of": None, "method": "rrf", "params": None, "norm": None,
                               "component_depth": None}

    def __init__(self, params: dict[str, Any] | None, *, base_dir: Path,
                 field: str | None = None):
        super().__init__(params, base_dir=base_dir, field=field)
        self.components = self._build_components(self.params["of"])
        self.method = self._method(self.params["method"])
        self.fusion_params = self._fusion_params(self.params["params"])
        self.norm = self._norm(self.params["norm"])
        depth = self.params["component_depth"]
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int)
                                  or depth < 1):
            raise InputError(f"{self.field}.component_depth: expected a positive integer, "
                             f"got {depth!r}")
        self._component_runs: list[Run] = []

    # -- validation -------------------------------------------------------------------------
    def _build_components(self, raw: Any) -> list[FirstStage]:
        from rerank_eval.first_stage import FIRST_STAGES

        field = f"{self.field}.of"
        if not isinstance(raw, list) or len(raw) < 2:
            raise InputError(f"{field}: expected a list of at least two first stages, "
                             "e.g. [{bm25: {}}, {dense: {model: packaged:all-minilm-l6-v2}}]")
        out = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or len(item) != 1:
                raise InputError(f"{field}[{i}]: expected a mapping with exactly one of "
                                 f"{', '.join(FIRST_STAGES)}")
            (kind, params), = item.items()
            if kind not in FIRST_STAGES:
                raise InputError(f"{field}[{i}]: unknown first stage {kind!r} "
                                 f"(use one of {', '.join(FIRST_STAGES)})")
            out.append(FIRST_STAGES[kind](params, base_dir=self.base_dir,
                                          field=f"{field}[{i}].{kind}"))
        return out

    def _method(self, raw: Any) -> str:
        if not isinstance(raw, str):
            raise InputError(f"{self.field}.method: expected a name such as rrf or combsum")
        method = METHOD_ALIASES.get(raw.lower(), raw.lower())
        if method in SUPERVISED:
            raise InputError(f"{self.field}.method: {raw!r} must be trained on qrels first; "
                             "not supported (use an unsupervised method such as rrf or wsum)")
        if method not in RANK_BASED | SCORE_BASED:
            known = sorted(RANK_BASED | SCORE_BASED | {"combsum", "combmnz"})
            raise InputError(f"{self.field}.method: unknown fusion method {raw!r} "
                             f"(use one of {', '.join(known)})")
        return method

    def _fusion_params(self, raw: Any) -> dict[str, Any]:
        from ranx.fusion import fusion_switch

        field = f"{self.field}.params"
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise InputError(f"{field}: expected a mapping, e.g. {{k: 60}} for rrf")
        signature = inspect.signature(fusion_switch(self.method)).parameters
        accepted = {n: p for n, p in signature.items() if n not in {"runs", "name"}}
        unknown = sorted(set(raw) - set(accepted))
        if unknown:
            raise InputError(f"{field}: unknown key {unknown[0]!r} for method {self.method!r} "
                             f"(allowed: {', '.join(sorted(accepted)) or 'none'})")
        missing = [n for n, p in accepted.items()
                   if p.default is inspect.Parameter.empty and n not in raw]
        if missing:
            raise InputError(f"{field}: method {self.method!r} needs {missing[0]!r}")
        weights = raw.get("weights")
        if "weights" in raw and (not isinstance(weights, list)
                                 or len(weights) != len(self.components)
                                 or not all(isinstance(w, (int, float)) for w in weights)):
            raise InputError(f"{field}.weights: expected {len(self.components)} numbers, "
                             "one per component")
        for name, value in raw.items():
            if name != "weights" and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                raise InputError(f"{field}.{name}: expected a number, got {value!r}")
        return dict(raw)

    def _norm(self, raw: Any) -> str | None:
        if raw is None:
            return None if self.method in RANK_BASED else "min-max"
        if raw not in NORMS:
            raise InputError(f"{self.field}.norm: unknown normalisation {raw!r} "
                             f"(use one of {', '.join(NORMS)})")
        return str(raw)

    # -- retrieval --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"hybrid-{self.method}"

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.key,
            "fusion": "ranx.fuse",
            "method": self.method,
            "method_as_written": self.params["method"],
            "params": self.fusion_params,
            "norm": self.norm,
            "component_input": ("rank-derived scores (component order per the tie rule)"
                                if self.method in RANK_BASED else "raw scores"),
            "component_depth": self.params["component_depth"],
            "components": [c.describe() for c in self.components],
        }

    def retrieve(self, dataset: Dataset, depth: int) -> Run:
        component_depth = int(self.params["component_depth"] or depth)
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
        component_depth = int(self.params["component_depth"] or depth)
        searchers = [c.query_searcher(dataset, component_depth) for c in self.components]
        if any(s is None for s in searchers) or not self._component_runs:
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
