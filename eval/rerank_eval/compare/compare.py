"""Side-by-side comparison of systems against a baseline, with paired statistics.

For each metric and reranking depth (a *cell*), every system is compared with the baseline on
the queries that every system of the cell has; the rest are dropped and counted. The family
for the multiple-comparison correction is the systems of one cell (one metric at one depth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rerank_eval.compare import stats
from rerank_eval.compare.conventions import allowed_lines, check_allow_list, check_conventions
from rerank_eval.compare.systems import System
from rerank_eval.errors import InputError
from rerank_eval.results import PairAgreement


@dataclass
class Row:
    """One system in one cell; the statistics are None for the baseline itself."""

    system: str
    source: str
    mean: float
    baseline: bool = False
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_values: dict[str, float] = field(default_factory=dict)  # every test, uncorrected
    p_value: float | None = None  # the chosen test
    p_adjusted: float | None = None
    significant: bool | None = None
    wins: int | None = None
    ties: int | None = None
    losses: int | None = None


@dataclass
class Cell:
    metric: str
    depth: int | None
    queries: int
    queries_dropped: int
    rows: list[Row]
    missing_systems: list[str] = field(default_factory=list)


@dataclass
class Settings:
    baseline: str
    test: str = "t-test"
    correction: str = "holm"
    alpha: float = 0.05
    permutations: int = stats.DEFAULT_PERMUTATIONS
    bootstrap: int = stats.DEFAULT_BOOTSTRAP
    confidence: float = 0.95
    seed: int = 0
    # Convention differences between the inputs that --allow-mismatch let through.
    allowed_mismatches: list[str] = field(default_factory=list)


@dataclass
class ComparisonReport:
    settings: Settings
    cells: list[Cell]
    # (source, pair): backend agreement the inputs recorded (rerankers declaring one model).
    agreement: list[tuple[str, PairAgreement]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"settings": asdict(self.settings), "cells": [asdict(c) for c in self.cells],
                "agreement": [{"source": source, **pair.as_dict()}
                              for source, pair in self.agreement]}


def compare_systems(
    systems: Sequence[System],
    *,
    baseline: str | None = None,
    metrics: Sequence[str] = (),
    depths: Sequence[int] = (),
    test: str = "t-test",
    correction: str = "holm",
    alpha: float = 0.05,
    permutations: int = stats.DEFAULT_PERMUTATIONS,
    bootstrap: int = stats.DEFAULT_BOOTSTRAP,
    seed: int = 0,
    allow_mismatch: Sequence[str] = (),
    agreement: Sequence[tuple[str, PairAgreement]] = (),
) -> ComparisonReport:
    """Compare ``systems`` with the baseline (default: the first system).

    Every input must share the baseline's conventions (``compare.conventions``: dataset,
    query sample, relevance threshold, first stage, depths, tie order); a difference is an
    InputError unless its field is in ``allow_mismatch``, and is then recorded in the
    report's settings. ``agreement`` (``systems.load_agreement``) is carried into the
    report."""
    if test not in stats.TESTS:
        raise InputError(f"--test: unknown test {test!r} (one of {', '.join(stats.TESTS)})")
    if correction not in stats.CORRECTIONS:
        raise InputError(f"--correction: unknown {correction!r} "
                         f"(one of {', '.join(stats.CORRECTIONS)})")
    by_name = {s.name: s for s in systems}
    base_name = baseline or systems[0].name
    if base_name not in by_name:
        raise InputError(f"--baseline: no system named {base_name!r} "
                         f"(systems: {', '.join(by_name)})")
    base = by_name[base_name]
    allowed = _check_conventions(systems, base, allow_mismatch)
    chosen_metrics = list(metrics) or [m for m in base.metrics()
                                       if all(m in s.values for s in systems)]
    for m in chosen_metrics:
        if m not in base.values:
            raise InputError(f"--metric: the baseline {base_name!r} has no {m!r} "
                             f"(it has: {', '.join(base.metrics())})")
    if not chosen_metrics:
        raise InputError("no metric is shared by every system; choose one with --metric")
    all_depths = sorted({d for s in systems for d in s.depths()})
    chosen_depths: list[int | None] = list(depths) or list(all_depths) or [None]
    for d in depths:
        if d not in all_depths:
            raise InputError(f"--depth: no system was reranked at depth {d} "
                             f"(depths: {', '.join(map(str, all_depths)) or 'none'})")
    settings = Settings(baseline=base_name, test=test, correction=correction, alpha=alpha,
                        permutations=permutations, bootstrap=bootstrap, seed=seed,
                        allowed_mismatches=allowed)
    cells = []
    for metric in chosen_metrics:
        for depth in chosen_depths:
            cell = _compare_cell(systems, base, metric, depth, settings)
            if cell is not None:
                cells.append(cell)
    return ComparisonReport(settings, cells, list(agreement))


def _check_conventions(systems: Sequence[System], base: System,
                       allow: Sequence[str]) -> list[str]:
    """Each input's conventions against the baseline's input (the first results.json when
    the baseline is a TREC run); the allowed differences as lines for the report."""
    check_allow_list(allow)
    reference = base if base.stage != "run" else next(
        (s for s in systems if s.stage != "run"), base)
    lines: list[str] = []
    seen: set[tuple[str, str]] = set()
    for s in systems:
        if s.conventions is reference.conventions:  # the same file (or both empty)
            continue
        labels = (reference.source, s.source)
        for m in check_conventions(reference.conventions, s.conventions, allow, labels=labels):
            key = (s.source, m.field)
            if key not in seen:
                seen.add(key)
                lines += allowed_lines([m], labels)
    return lines


def _compare_cell(systems: Sequence[System], base: System, metric: str, depth: int | None,
                  settings: Settings) -> Cell | None:
    found = [(s, s.at(metric, depth)) for s in systems]
    missing = [s.name for s, v in found if v is None]
    present = [(s, v) for s, v in found if v is not None]
    base_values = base.at(metric, depth)
    if base_values is None or len(present) < 2:
        return None
    union = set().union(*(v.keys() for _, v in present))
    common = sorted(set.intersection(*(set(v) for _, v in present)))
    if not common:
        raise InputError(f"{metric} at depth {depth}: the systems share no query")
    a = np.array([base_values[q] for q in common])
    rows: list[Row] = []
    for s, values in present:
        b = np.array([values[q] for q in common])
        row = Row(system=s.name, source=s.source, mean=float(b.mean()))
        if s is base:
            row.baseline = True
        else:
            row.diff = float(b.mean() - a.mean())
            row.ci_low, row.ci_high = stats.bootstrap_ci(
                a, b, confidence=settings.confidence, resamples=settings.bootstrap,
                seed=settings.seed)
            row.p_values = {t: stats.paired_p_value(t, a, b, permutations=settings.permutations,
                                                    seed=settings.seed) for t in stats.TESTS}
            row.p_value = row.p_values[settings.test]
            wtl = stats.win_tie_loss(a, b)
            row.wins, row.ties, row.losses = wtl.wins, wtl.ties, wtl.losses
        rows.append(row)
    others = [r for r in rows if not r.baseline]
    adjusted = stats.correct([r.p_values[settings.test] for r in others], settings.correction)
    for r, p in zip(others, adjusted):
        r.p_adjusted = p
        r.significant = p < settings.alpha
    return Cell(metric, depth, len(common), len(union) - len(common), rows, missing)
