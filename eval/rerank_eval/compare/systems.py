"""Systems to compare, as per-query metric values: from results.json (+ per_query.csv beside
it) or from TREC runs evaluated against a qrels file.

A system's values are keyed by metric, then by depth: rerankers have one set of values per
reranking depth, while a first stage or a TREC run has one set (depth ``None``) that applies
at every depth.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rerank_eval.compare.conventions import conventions_of
from rerank_eval.errors import InputError
from rerank_eval.results import PairAgreement, Results, read_results

PerQuery = dict[str, float]  # query id -> value
PER_QUERY_COLUMNS = ("system", "stage", "depth", "query_id", "metric", "value")


@dataclass
class System:
    """One ranked output and its per-query metric values."""

    name: str
    source: str
    stage: str  # "first_stage", "reranker" or "run"
    # What its numbers assume (``compare.conventions``): all fields for a results.json, the
    # relevance threshold for a TREC run evaluated here.
    conventions: dict[str, str | None] = field(default_factory=dict, repr=False)
    values: dict[str, dict[int | None, PerQuery]] = field(default_factory=dict)

    def metrics(self) -> list[str]:
        return list(self.values)

    def depths(self) -> list[int]:
        return sorted({d for per_depth in self.values.values() for d in per_depth
                       if d is not None})

    def at(self, metric: str, depth: int | None) -> PerQuery | None:
        """Values of ``metric`` at reranking ``depth`` (depth-independent systems always
        answer); None when this system has no such values."""
        per_depth = self.values.get(metric, {})
        if None in per_depth:
            return per_depth[None]
        if depth is None:
            return None
        return per_depth.get(depth)


def load_results(path: Path) -> tuple[Results, list[System]]:
    """results.json and its per_query.csv: the first stage and every reranker."""
    results = read_results(path)
    per_query = path.parent / "per_query.csv"
    if not per_query.is_file():
        raise InputError("per_query.csv not found beside results.json (needed for paired "
                         "statistics)", path=per_query)
    systems: dict[str, System] = {}
    source = str(path)
    for line_no, row in _csv_rows(per_query):
        name, stage = row["system"], row["stage"]
        try:
            depth = int(row["depth"])
            value = float(row["value"])
        except ValueError:
            raise InputError("depth must be an integer and value a number", path=per_query,
                             line=line_no) from None
        if math.isnan(value):
            raise InputError("value is NaN", path=per_query, line=line_no)
        if stage not in ("first_stage", "reranker"):
            raise InputError(f"stage must be first_stage or reranker, got {stage!r}",
                             path=per_query, line=line_no)
        system = systems.setdefault(name, System(name, source, stage))
        key = None if stage == "first_stage" else depth
        system.values.setdefault(row["metric"], {}).setdefault(key, {})[row["query_id"]] = value
    if not systems:
        raise InputError("no rows", path=per_query)
    found = conventions_of(results)
    for system in systems.values():
        system.conventions = found
    ordered = sorted(systems.values(), key=lambda s: (s.stage != "first_stage",))
    return results, ordered


def _csv_rows(path: Path):
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in PER_QUERY_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"missing column {missing[0]!r} (expected "
                             f"{', '.join(PER_QUERY_COLUMNS)})", path=path, line=1)
        yield from enumerate(reader, start=2)


def load_run(path: Path, qrels: dict[str, dict[str, int]], metrics: Sequence[str],
             relevance_threshold: int) -> System:
    """A TREC run evaluated with the harness's own metrics (trec_eval semantics)."""
    from rerank_eval.metrics import evaluate_ranking, parse_metrics
    from rerank_eval.runs import read_trec_run

    run = read_trec_run(path)
    specs = parse_metrics(list(metrics), "--metric")
    evaluation = evaluate_ranking(run.ranking, qrels, specs, relevance_threshold)
    system = System(path.stem if path.suffix in (".trec", ".run", ".txt") else path.name,
                    str(path), "run", conventions={
                        "relevance_threshold": str(relevance_threshold)})
    for spec in specs:
        system.values[spec.name] = {None: dict(evaluation.per_query[spec.name])}
    return system


def load_systems(inputs: Sequence[str | Path], *, qrels_path: str | Path | None = None,
                 metrics: Sequence[str] = (), relevance_threshold: int = 1) -> list[System]:
    """Every system from every input. A ``.json`` input is a results.json (or a reports
    folder holding one); anything else is a TREC run, which needs ``qrels_path`` and
    ``metrics``. Names repeated across inputs get their source's name as a prefix."""
    systems: list[System] = []
    qrels = None
    for item in inputs:
        path = Path(item)
        if path.is_dir() and (path / "results.json").is_file():
            path = path / "results.json"
        if path.suffix == ".json":
            results, found = load_results(path)
            label = results.name or path.parent.name
            for s in found:
                s.source = label
            systems += found
            continue
        if qrels_path is None:
            raise InputError("a TREC run needs --qrels FILE", path=path)
        if not metrics:
            raise InputError("TREC runs need --metric (e.g. --metric ndcg@10)", path=path)
        if qrels is None:
            from rerank_eval.datasets.formats import read_qrels

            qrels = read_qrels(Path(qrels_path))
        systems.append(load_run(path, qrels, metrics, relevance_threshold))
    if not systems:
        raise InputError("nothing to compare: give results.json files or TREC runs")
    _disambiguate(systems)
    return systems


def load_agreement(inputs: Sequence[str | Path]) -> list[tuple[str, PairAgreement]]:
    """The backend agreement each results.json input recorded (rerankers declaring the same
    model), labelled like its systems; TREC runs record none."""
    out: list[tuple[str, PairAgreement]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir() and (path / "results.json").is_file():
            path = path / "results.json"
        if path.suffix == ".json":
            results = read_results(path)
            out += [(results.name or path.parent.name, pair) for pair in results.agreement]
    return out


def _disambiguate(systems: list[System]) -> None:
    counts: dict[str, int] = {}
    for s in systems:
        counts[s.name] = counts.get(s.name, 0) + 1
    for s in systems:
        if counts[s.name] > 1:
            s.name = f"{s.source}/{s.name}"
    seen: set[str] = set()
    for s in systems:
        if s.name in seen:
            raise InputError(f"system {s.name!r} is given twice")
        seen.add(s.name)
