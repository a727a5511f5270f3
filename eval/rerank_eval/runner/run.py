"""One runner for experiments and sweeps: validate, execute, write.

A single experiment is a sweep of one dataset whose rerankers share one results.json; a sweep
gives every (dataset, reranker) cell its own results.json plus ``sweep.json``. Both run through
:func:`_execute`, in the same order and with the same guarantees:

1. Validation: every reranker is built and preflighted (a missing path, a hub id neither cached
   nor reachable, a missing API key) before any dataset loads, so a bad second reranker fails
   in seconds, not after the first one's whole pass; so is the executor.
2. Execution: every dataset's first stage first (a bad dataset or run file fails before any
   scoring), then reranker by reranker (its model loads once; on Ray the pool is kept while it
   scores the next dataset), dataset by dataset.
3. Writing: the ``_Outputs`` of the experiment or the sweep write each finished piece at once
   (runs, results.json, sweep.json), so a failure never loses finished work, and the report at
   the end. Executor, score cache and models are closed in ``finally`` whatever happens.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rerank_eval.config import ExperimentConfig, RerankerConfig, SweepConfig
from rerank_eval.errors import InputError
from rerank_eval.rerankers import build_reranker
from rerank_eval.rerankers.base import Reranker, ScoringStats
from rerank_eval.rerankers.listwise import ListwiseReranker
from rerank_eval.results import PairAgreement, SkippedReranker
from rerank_eval.runner.results import ExperimentResult, StageResult, write_results
from rerank_eval.runner.steps import (
    PreparedDataset,
    log_hardware,
    log_stage,
    prepare_first_stage,
    sanity_info,
    score_reranker,
    write_first_stage,
)
from rerank_eval.runner.sweep import SweepResult, write_sweep_json, write_sweep_report
from rerank_eval.scoring import make_executor
from rerank_eval.scoring.cache import open_cache

logger = logging.getLogger(__name__)


def run_experiment(config: ExperimentConfig, *,
                   out_dir: str | Path | None = None) -> ExperimentResult:
    """Run one experiment: its dataset, first stage and every reranker at every depth.

    Args:
        config: from :func:`rerank_eval.load_config` (or ``parse_config``).
        out_dir: where results go (runs in ``out_dir/runs``); default ``reports/<name>/`` and
            ``runs/<name>/`` under the working directory.

    Returns:
        The first stage and every reranker's evaluations per depth, with cost measurements
        (also written to ``results.json``).

    Example:
        >>> from rerank_eval import load_config, run_experiment
        >>> result = run_experiment(load_config("configs/quickstart.yaml"), out_dir="/tmp/qs")
        >>> result.rerankers[0].evaluations[10].means["ndcg@10"]  # doctest: +SKIP
    """
    if isinstance(config, SweepConfig):
        raise TypeError("run_experiment: this config is a sweep (datasets:); use run_sweep")
    out = Path(out_dir) if out_dir is not None else None
    outputs = _ExperimentOutputs(config, out)
    _execute([config], config, outputs)
    assert outputs.result is not None  # set once the first stage is done
    return outputs.result


def run_sweep(config: SweepConfig, *, out_dir: str | Path | None = None) -> SweepResult:
    """Run every (dataset, reranker) cell of a ``datasets:`` config.

    Args:
        config: a sweep config (``datasets:`` instead of ``dataset:``).
        out_dir: the sweep's root (default ``reports/<name>/``).

    Returns:
        The finished cells in run order (also in ``sweep.json``).
    """
    if not isinstance(config, SweepConfig):
        raise TypeError("run_sweep: this config is one experiment (dataset:); use "
                        "run_experiment")
    root = Path(out_dir) if out_dir is not None else Path("reports") / config.name
    outputs = _SweepOutputs(config, root)
    _execute(config.experiments, config.experiments[0], outputs)
    return outputs.result


class _Outputs:
    """Where an execution's pieces go; ``_execute`` calls these in order."""

    hardware: dict
    skipped: list[SkippedReranker]

    def first_stage_done(self, prepared: PreparedDataset) -> None:
        raise NotImplementedError

    def cell(self, prepared: PreparedDataset, rr_cfg: RerankerConfig) -> tuple[Path, Path, bool]:
        """Runs folder, reports folder, and whether the audit appends to an earlier one."""
        raise NotImplementedError

    def cell_done(self, prepared: PreparedDataset, rr_cfg: RerankerConfig,
                  stage: StageResult) -> None:
        raise NotImplementedError

    def finish(self) -> Path | None:
        """Write the report; its path (None when there is nothing to report)."""
        raise NotImplementedError


class _ExperimentOutputs(_Outputs):
    """One results.json with every reranker, rewritten as each one finishes."""

    def __init__(self, config: ExperimentConfig, out: Path | None):
        self.config = config
        self.runs_dir = out / "runs" if out else Path("runs") / config.name
        self.reports_dir = out if out else Path("reports") / config.name
        self.result: ExperimentResult | None = None

    def first_stage_done(self, prepared: PreparedDataset) -> None:
        self.result = ExperimentResult(
            config=self.config, dataset=prepared.dataset, first_stage=prepared.first_stage,
            rerankers=[], runs_dir=self.runs_dir, reports_dir=self.reports_dir,
            timings=prepared.timings, hardware=self.hardware, skipped=self.skipped)
        write_first_stage(prepared, self.runs_dir, self.reports_dir)
        write_results(self.result)

    def cell(self, prepared: PreparedDataset, rr_cfg: RerankerConfig) -> tuple[Path, Path, bool]:
        assert self.result is not None
        return self.runs_dir, self.reports_dir, bool(self.result.rerankers)

    def cell_done(self, prepared: PreparedDataset, rr_cfg: RerankerConfig,
                  stage: StageResult) -> None:
        assert self.result is not None
        self.result.rerankers.append(stage)
        write_results(self.result)

    def finish(self) -> Path:
        from rerank_eval.reports.render import write_report
        from rerank_eval.runner.results import results_model

        assert self.result is not None
        self.result.agreement = _same_model_agreement(self.result)
        if self.result.agreement:
            write_results(self.result)
        return write_report([results_model(self.result)], self.reports_dir)


def _same_model_agreement(result: ExperimentResult) -> list[PairAgreement]:
    """``rerank-eval agree`` on the finished run, for rerankers declaring the same model
    (one checkpoint through several backends); empty when none do. When it cannot compare
    them (e.g. a missing scores file) it logs why and the run's results stay."""
    from rerank_eval.compare.agree import agree, same_model_pairs
    from rerank_eval.runner.results import results_model

    if not same_model_pairs(results_model(result)):
        return []
    try:
        pairs = agree(result.reports_dir / "results.json",
                      metrics=[m.name for m in result.config.resolved_metrics],
                      runs_dir=str(result.runs_dir)).pairs
    except InputError as exc:
        logger.warning(f"agreement of the rerankers declaring one model left out: {exc}")
        return []
    for pair in pairs:
        logger.info(f"agreement {pair.b} vs {pair.a}: Kendall tau min {pair.tau_min:.6f}, "
                    f"top-{pair.k} changed in {pair.topk_changed:.1%} of queries")
    return pairs


class _SweepOutputs(_Outputs):
    """A results.json per (dataset, reranker) cell, sweep.json after every cell, and the
    merged report at the end."""

    def __init__(self, config: SweepConfig, root: Path):
        self.root = root
        self.result = SweepResult(config=config, reports_dir=root)

    def first_stage_done(self, prepared: PreparedDataset) -> None:
        self.result.hardware = self.hardware
        name = prepared.config.dataset_name
        write_first_stage(prepared, self.root / name / "runs", self.root / name)
        write_sweep_json(self.result)

    def _cell_result(self, prepared: PreparedDataset, rr_cfg: RerankerConfig
                     ) -> ExperimentResult:
        cell_dir = self.root / prepared.config.dataset_name / rr_cfg.name
        return ExperimentResult(
            config=prepared.config.model_copy(update={"rerankers": [rr_cfg]}),
            dataset=prepared.dataset, first_stage=prepared.first_stage, rerankers=[],
            runs_dir=cell_dir / "runs", reports_dir=cell_dir, timings=dict(prepared.timings),
            hardware=self.hardware)

    def cell(self, prepared: PreparedDataset, rr_cfg: RerankerConfig) -> tuple[Path, Path, bool]:
        cell = self._cell_result(prepared, rr_cfg)
        write_first_stage(prepared, cell.runs_dir, cell.reports_dir)  # each cell stands alone
        write_results(cell)  # status: partial until its reranker is in
        return cell.runs_dir, cell.reports_dir, False

    def cell_done(self, prepared: PreparedDataset, rr_cfg: RerankerConfig,
                  stage: StageResult) -> None:
        cell = self._cell_result(prepared, rr_cfg)
        cell.rerankers.append(stage)
        write_results(cell)
        self.result.cells.append(cell)
        write_sweep_json(self.result)

    def finish(self) -> Path | None:
        return write_sweep_report(self.result) if self.result.cells else None


def _build_rerankers(shared: ExperimentConfig
                     ) -> tuple[list[tuple[RerankerConfig, Reranker]], list[SkippedReranker]]:
    """Every reranker built and preflighted before any work (see the module docstring); an
    ``optional: true`` one that fails its preflight is skipped with one log line instead."""
    built: list[tuple[RerankerConfig, Reranker]] = []
    skipped: list[SkippedReranker] = []
    try:
        for r in shared.rerankers:
            reranker = build_reranker(r.name, r.kind, r.params, base_dir=shared.base_dir)
            try:
                reranker.preflight()
            except InputError as e:
                if not r.optional:
                    reranker.close()
                    raise
                reranker.close()
                logger.info(f"{r.name}: skipped (optional: true): {e}")
                skipped.append(SkippedReranker(name=r.name, kind=r.kind,
                                               model=reranker.model_id or None, reason=str(e)))
                continue
            built.append((r, reranker))
    except BaseException:
        _close_all([reranker for _, reranker in built])
        raise
    return built, skipped


def _sanity_on(rr_cfg: RerankerConfig, reranker: Reranker, shared: ExperimentConfig) -> bool:
    """The entry's ``sanity`` when given; else the config's ``sanity_check`` for backends whose
    calls are free, and off for billed ones (hosted APIs: no latency probes either). Listwise
    models have no pair scores to probe."""
    if isinstance(reranker, ListwiseReranker):
        return False
    if rr_cfg.sanity is not None:
        return bool(rr_cfg.sanity)
    return shared.sanity_check and type(reranker).latency_probes


def _close_all(rerankers: list[Reranker]) -> None:
    for reranker in rerankers:
        reranker.close()


def _execute(experiments: list[ExperimentConfig], shared: ExperimentConfig,
             outputs: _Outputs) -> None:
    """Validation, execution and writing for ``experiments`` (one per dataset), whose
    rerankers, executor and cache are ``shared``'s."""
    outputs.hardware = log_hardware()
    built, skipped = _build_rerankers(shared)
    rerankers = [reranker for _, reranker in built]
    outputs.skipped = skipped
    executor = cache = None
    try:
        executor = make_executor(shared.executor)
        prepared: list[PreparedDataset] = []
        for exp in experiments:
            if isinstance(outputs, _SweepOutputs):
                logger.info(f"sweep: dataset {exp.dataset_name}")
            prepared.append(prepare_first_stage(exp))
            outputs.first_stage_done(prepared[-1])
        cache = open_cache(shared.cache.enabled, shared.cache.path) if rerankers else None
        if cache is not None:
            logger.info(f"score cache: {cache.path}")
        for rr_cfg, reranker in built:
            sanity = sanity_info(reranker) if _sanity_on(rr_cfg, reranker, shared) else None
            for p in prepared:
                if isinstance(outputs, _SweepOutputs):
                    logger.info(f"sweep: cell {p.config.dataset_name} x {rr_cfg.name}")
                reranker.stats = ScoringStats()  # per cell: pairs scored, from cache, ...
                runs_dir, reports_dir, append_audit = outputs.cell(p, rr_cfg)
                stage = score_reranker(p, rr_cfg, reranker, executor, cache, runs_dir=runs_dir,
                                       reports_dir=reports_dir, sanity=sanity,
                                       append_audit=append_audit)
                outputs.cell_done(p, rr_cfg, stage)
                log_stage(stage, p)
            reranker.close()  # free its memory before the next model loads
        report = outputs.finish()
        if report is not None:
            logger.info(f"report: {report}")
    finally:
        if cache is not None:
            cache.close()
        _close_all(rerankers)
        if executor is not None:
            executor.close()
