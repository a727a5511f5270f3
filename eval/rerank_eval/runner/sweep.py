"""A sweep: every (dataset, reranker) cell of a ``datasets:`` config, with one executor, one
score cache and each dataset's first stage computed once.

Cells run one after another, reranker by reranker and, within a reranker, dataset by dataset:
the model is loaded once (in the driver and, on Ray, in the worker pool, which ``RayExecutor``
keeps while the same reranker scores) and each cell is spread over every worker. Each cell's
results.json (the normal schema: the first stage and that one reranker) and runs are written
under ``<root>/<dataset>/<reranker>/`` as soon as the cell finishes, and ``sweep.json`` is
rewritten after every cell, so a failing cell never loses finished ones. The merged report
(report.md/.html) comes at the end.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rerank_eval.config import SweepConfig
from rerank_eval.rerankers import build_reranker
from rerank_eval.rerankers.base import ScoringStats
from rerank_eval.runner.pipeline import (
    ExperimentResult,
    Log,
    PreparedDataset,
    log_hardware,
    log_stage,
    prepare_first_stage,
    sanity_info,
    score_reranker,
    write_first_stage,
)
from rerank_eval.scoring import make_executor
from rerank_eval.scoring.cache import open_cache

SWEEP_SCHEMA_VERSION = 1


@dataclass
class SweepResult:
    config: SweepConfig
    reports_dir: Path
    cells: list[ExperimentResult] = field(default_factory=list)  # finished, in run order
    hardware: dict[str, Any] = field(default_factory=dict)


def run_sweep(config: SweepConfig, *, out_dir: Path | None = None,
              log: Log = print) -> SweepResult:
    """Run every (dataset, reranker) cell of ``config`` (see the module docstring)."""
    from rerank_eval.runner.results import write_results

    root = out_dir if out_dir else Path("reports") / config.name
    result = SweepResult(config=config, reports_dir=root, hardware=log_hardware(log))
    shared = config.experiments[0]  # rerankers, executor and cache are the same in all
    rerankers = [build_reranker(r.name, r.kind, r.params, base_dir=config.base_dir)
                 for r in shared.rerankers]
    executor = make_executor(shared.executor)
    cache = None
    try:
        # Every dataset's first stage first: a bad dataset or run file fails before any scoring.
        prepared: list[PreparedDataset] = []
        for exp in config.experiments:
            log(f"sweep: dataset {exp.dataset.name}")
            p = prepare_first_stage(exp, log=log)
            write_first_stage(p, root / str(exp.dataset.name) / "runs",
                              root / str(exp.dataset.name))
            prepared.append(p)
        cache = open_cache(shared.cache.enabled, shared.cache.path) if rerankers else None
        if cache is not None:
            log(f"score cache: {cache.path}")
        _write_sweep_json(result)
        for rr_cfg, reranker in zip(shared.rerankers, rerankers):
            sanity = sanity_info(reranker, log) if shared.sanity_check else None
            for p in prepared:
                name = str(p.config.dataset.name)
                log(f"sweep: cell {name} x {rr_cfg.name}")
                reranker.stats = ScoringStats()  # per cell: pairs scored, from cache, ...
                cell_dir = root / name / rr_cfg.name
                cell = ExperimentResult(
                    config=dataclasses.replace(p.config, rerankers=[rr_cfg]),
                    dataset=p.dataset, first_stage=p.first_stage, rerankers=[],
                    runs_dir=cell_dir / "runs", reports_dir=cell_dir,
                    timings=dict(p.timings), hardware=result.hardware)
                write_first_stage(p, cell.runs_dir, cell_dir)  # each cell is self-contained
                stage = score_reranker(p, rr_cfg, reranker, executor, cache,
                                       runs_dir=cell.runs_dir, reports_dir=cell_dir,
                                       info=sanity, log=log)
                cell.rerankers.append(stage)
                write_results(cell)
                result.cells.append(cell)
                _write_sweep_json(result)
                log_stage(stage, p, log)
            reranker.close()
        if result.cells:
            log(f"report: {write_sweep_report(result)}")
    finally:
        if cache is not None:
            cache.close()
        executor.close()
    return result


def cell_summary(cell: ExperimentResult, root: Path) -> dict[str, Any]:
    """One line of sweep.json: where the cell is, its metrics per depth and what it cost."""
    stage = cell.rerankers[0]
    fs = cell.first_stage
    return {
        "dataset": cell.config.dataset.name,
        "dataset_id": cell.dataset.id,
        "reranker": stage.name,
        "kind": stage.kind,
        "model": stage.model,
        "results": str((cell.reports_dir / "results.json").relative_to(root)),
        "first_stage": {"name": fs.name, "depth": fs.info["depth"],
                        "metrics": fs.evaluations[None].means},
        "metrics": {str(d): ev.means for d, ev in stage.evaluations.items()},
        "pairs_scored": stage.info.get("pairs_scored", 0),
        "pairs_from_cache": stage.info.get("pairs_from_cache", 0),
        "scoring_s": stage.info.get("scoring_s"),
        "recommended_depth": stage.info.get("recommended_depth"),
    }


def sweep_dict(result: SweepResult) -> dict[str, Any]:
    root = result.reports_dir
    return {"schema_version": SWEEP_SCHEMA_VERSION, "name": result.config.name,
            "hardware": result.hardware, "config": result.config.resolved(),
            "cells": [cell_summary(c, root) for c in result.cells]}


def _write_sweep_json(result: SweepResult) -> Path:
    root = result.reports_dir
    root.mkdir(parents=True, exist_ok=True)
    path = root / "sweep.json"
    tmp = path.with_name("sweep.json.tmp")
    tmp.write_text(json.dumps(sweep_dict(result), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def sweep_frame(result: SweepResult) -> pd.DataFrame:
    """Dataset x reranker: the recommendation metric of the first stage and of each reranker
    at each depth, with the pairs scored and the scoring time."""
    shared = result.config.experiments[0]
    metric = shared.recommendation.metric
    rows = []
    for cell in result.cells:
        s = cell_summary(cell, result.reports_dir)
        rows.append({"dataset": s["dataset"], "reranker": s["reranker"],
                     f"first stage {metric}": f"{s['first_stage']['metrics'][metric]:.4f}",
                     **{f"{metric} @{d}": f"{m[metric]:.4f}" for d, m in s["metrics"].items()},
                     "pairs scored": s["pairs_scored"], "from cache": s["pairs_from_cache"],
                     "scoring s": f"{s['scoring_s']:.1f}"})
    return pd.DataFrame(rows)


def write_sweep_report(result: SweepResult) -> Path:
    """report.md and report.html at the sweep's root: the dataset x reranker table, then the
    usual report over every dataset (its cells merged into one results dict per dataset)."""
    from rerank_eval.reports.render import write_report
    from rerank_eval.runner.results import results_dict

    merged: dict[str, dict[str, Any]] = {}
    for cell in result.cells:
        data = results_dict(cell)
        key = str(cell.config.dataset.name)
        if key in merged:
            merged[key]["rerankers"] += data["rerankers"]
        else:
            merged[key] = data
    lead = [("h2", "Sweep: dataset x reranker"),
            ("table", (sweep_frame(result),
                       f"{len(result.cells)} cells; one results.json per cell under "
                       "<dataset>/<reranker>/; sweep.json holds every cell's metrics."))]
    return write_report(list(merged.values()), result.reports_dir, lead=lead)
