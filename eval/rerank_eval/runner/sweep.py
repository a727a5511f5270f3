"""A sweep's own outputs: ``sweep.json`` (one line per finished cell, rewritten after every
cell, so a failing cell never loses finished ones) and the merged report with its dataset x
reranker table. The cells themselves are run by ``run.py``; each cell's results.json (the
normal schema: the first stage and that one reranker) lives under ``<root>/<dataset>/<reranker>/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rerank_eval.config import SweepConfig
from rerank_eval.files import atomic_write_text
from rerank_eval.reports.terminal import frame_table
from rerank_eval.results import Hardware, Sweep, SweepCell, SweepFirstStage, sweep_json
from rerank_eval.runner.results import ExperimentResult


@dataclass
class SweepResult:
    config: SweepConfig
    reports_dir: Path
    cells: list[ExperimentResult] = field(default_factory=list)  # finished, in run order
    hardware: dict[str, Any] = field(default_factory=dict)


def cell_summary(cell: ExperimentResult, root: Path) -> SweepCell:
    """One line of sweep.json: where the cell is, its metrics per depth and what it cost."""
    from rerank_eval.runner.results import first_stage_entry, reranker_entry

    stage = cell.rerankers[0]
    fs = first_stage_entry(cell.first_stage)
    entry = reranker_entry(stage)
    return SweepCell(
        dataset=cell.config.dataset_name, dataset_id=cell.dataset.id, reranker=stage.name,
        kind=stage.kind, model=stage.model,
        results=str((cell.reports_dir / "results.json").relative_to(root)),
        first_stage=SweepFirstStage(name=fs.name, depth=fs.depth, metrics=fs.metrics),
        metrics=entry.metrics, pairs_scored=entry.pairs_scored,
        pairs_from_cache=entry.pairs_from_cache, scoring_s=entry.scoring_s,
        recommended_depth=entry.recommended_depth)


def sweep_model(result: SweepResult) -> Sweep:
    """sweep.json as a model (``rerank_eval.results.Sweep``)."""
    root = result.reports_dir
    return Sweep(name=result.config.name,
                 hardware=Hardware.model_validate(result.hardware) if result.hardware else None,
                 config=result.config.resolved(),
                 cells=[cell_summary(c, root) for c in result.cells])


def write_sweep_json(result: SweepResult) -> Path:
    return atomic_write_text(result.reports_dir / "sweep.json", sweep_json(sweep_model(result)))


def sweep_frame(result: SweepResult) -> pd.DataFrame:
    """Dataset x reranker: the recommendation metric of the first stage and of each reranker
    at each depth, with the pairs scored and the scoring time."""
    shared = result.config.experiments[0]
    metric = shared.recommendation.metric
    rows = []
    for cell in result.cells:
        s = cell_summary(cell, result.reports_dir)
        rows.append({"dataset": s.dataset, "reranker": s.reranker,
                     f"first stage {metric}": f"{s.first_stage.metrics[metric]:.4f}",
                     **{f"{metric} @{d}": f"{m[metric]:.4f}" for d, m in s.metrics.items()},
                     "pairs scored": s.pairs_scored, "from cache": s.pairs_from_cache,
                     "scoring s": f"{s.scoring_s:.1f}"})
    return pd.DataFrame(rows)


def sweep_table(result: SweepResult) -> str:
    """The dataset x reranker table the CLI prints (``sweep_frame`` as terminal text)."""
    return frame_table(sweep_frame(result))


def write_sweep_report(result: SweepResult) -> Path:
    """report.md and report.html at the sweep's root: the dataset x reranker table, then the
    usual report over every dataset (its cells merged into one results dict per dataset)."""
    from rerank_eval.reports.render import write_report
    from rerank_eval.results import Results
    from rerank_eval.runner.results import results_model

    merged: dict[str, Results] = {}
    for cell in result.cells:
        data = results_model(cell)
        key = cell.config.dataset_name
        if key in merged:
            merged[key].rerankers += data.rerankers
        else:
            merged[key] = data
    lead = [("h2", "Sweep: dataset x reranker"),
            ("table", (sweep_frame(result),
                       f"{len(result.cells)} cells; one results.json per cell under "
                       "<dataset>/<reranker>/; sweep.json holds every cell's metrics."))]
    return write_report(list(merged.values()), result.reports_dir, lead=lead)
