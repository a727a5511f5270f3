"""The experiment: dataset -> first stage -> rerankers at each depth -> metrics -> results.

``run_experiment`` is the Python API the CLI wraps. It returns plain data (ExperimentResult)
and writes runs and reports as it goes, so finished stages are on disk if a later one fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerank_eval.analysis.audit import audit_reranker
from rerank_eval.config import ExperimentConfig, RerankerConfig
from rerank_eval.datasets import Dataset, load_dataset
from rerank_eval.first_stage import FIRST_STAGES
from rerank_eval.hardware import hardware_fingerprint
from rerank_eval.metrics import Evaluation, evaluate_ranking
from rerank_eval.metrics.recall_curve import recall_curve
from rerank_eval.rerankers import build_reranker
from rerank_eval.rerankers.base import Reranker
from rerank_eval.rerankers.sanity import run_sanity_probes
from rerank_eval.runner.cost import benchmark_reranker
from rerank_eval.runner.results import ExperimentResult, StageResult
from rerank_eval.runs import Run, write_trec_run
from rerank_eval.scoring import make_executor
from rerank_eval.scoring.cache import ScoreCache, open_cache
from rerank_eval.scoring.executors import Executor
from rerank_eval.scoring.latency import measure_first_stage_latency

Log = Callable[[str], None]


def prepare_dataset(config: ExperimentConfig) -> Dataset:
    ds_cfg = config.dataset
    dataset = load_dataset(ds_cfg.source, ds_cfg.spec, split=ds_cfg.split,
                           base_dir=config.base_dir, qrels=ds_cfg.qrels)
    if ds_cfg.sample is not None:
        dataset = dataset.sample_queries(ds_cfg.sample.queries, ds_cfg.sample.seed)
    return dataset


@dataclass
class PreparedDataset:
    """A dataset with its first stage retrieved and evaluated: what every reranker of it
    shares (computed once per dataset, also in a sweep)."""

    config: ExperimentConfig
    dataset: Dataset
    run: Run  # the first stage's full run (to first_stage.depth)
    shortlist: Run  # its top max(depths): the pairs rerankers score
    first_stage: StageResult
    curve: dict[int, float]  # first-stage recall@k: the reranking ceiling
    timings: dict[str, float]


def prepare_first_stage(config: ExperimentConfig, *, log: Log = print) -> PreparedDataset:
    """Load the dataset, run the first stage, evaluate it and time it per query."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    dataset = prepare_dataset(config)
    timings["load_dataset_s"] = time.perf_counter() - t0
    log(f"dataset {dataset.id}: {len(dataset.queries)} queries, {len(dataset.corpus)} documents")

    fs_cfg = config.first_stage
    first_stage = FIRST_STAGES[fs_cfg.kind](fs_cfg.params, base_dir=config.base_dir,
                                            field=f"{fs_cfg.where}.{fs_cfg.kind}")
    t0 = time.perf_counter()
    fs_run = first_stage.retrieve(dataset, fs_cfg.depth)
    if config.dataset.drop_self_matches:
        fs_run = fs_run.drop_self_matches()
    timings["first_stage_s"] = time.perf_counter() - t0
    fs_eval = evaluate_ranking(fs_run.ranking, dataset.qrels, config.metrics,
                               config.relevance_threshold)
    curve = recall_curve(fs_run.ranking, dataset.qrels, fs_cfg.depth,
                         config.relevance_threshold, extra=config.depths)
    fs_result = StageResult(name=first_stage.name, kind=fs_cfg.kind, model=None,
                            evaluations={None: fs_eval},
                            info={"depth": fs_cfg.depth,
                                  "latency_ms": measure_first_stage_latency(
                                      first_stage.query_searcher(dataset, fs_cfg.depth),
                                      dataset, config.latency),
                                  "params": first_stage.describe(),
                                  "recall_curve": {str(k): v for k, v in curve.items()}})
    first_stage.close()
    log(f"first stage {first_stage.name}: " + _fmt(fs_eval.means))
    log("first-stage recall curve (the reranking ceiling): "
        + "  ".join(f"@{k}={v:.4f}" for k, v in curve.items()))
    return PreparedDataset(config=config, dataset=dataset, run=fs_run,
                           shortlist=fs_run.top(max(config.depths)), first_stage=fs_result,
                           curve=curve, timings=timings)


def write_first_stage(prepared: PreparedDataset, runs_dir: Path, reports_dir: Path) -> None:
    """The first stage's TREC run and its recall plot."""
    from rerank_eval.reports.recall_plot import write_recall_plot

    config = prepared.config
    write_trec_run(prepared.run, runs_dir / "first_stage.trec", tag=prepared.first_stage.name)
    write_recall_plot(prepared.curve, reports_dir / "first_stage_recall.png",
                      depths=config.depths,
                      title=f"{config.name}: first-stage recall ({prepared.first_stage.name}, "
                            f"{prepared.dataset.id})")


def sanity_info(reranker: Reranker, log: Log = print) -> dict[str, Any]:
    """The obvious-pair probes (a property of the model, not of the dataset)."""
    sanity = run_sanity_probes(reranker)
    if sanity.failed:
        log(f"WARNING: {reranker.name} ranks the irrelevant passage first on "
            f"{sanity.inverted}/{sanity.probes} obvious sanity probes: check label "
            "index, pair order and score sign (or the model is untrained)")
    return {"sanity": sanity.as_dict()}


def score_reranker(prepared: PreparedDataset, rr_cfg: RerankerConfig, reranker: Reranker,
                   executor: Executor, cache: ScoreCache | None, *, runs_dir: Path,
                   reports_dir: Path, info: dict[str, Any] | None = None,
                   append_audit: bool = False, log: Log = print) -> StageResult:
    """Score the shortlist with one reranker, evaluate it at every depth, write its runs and
    scores, and measure its cost. ``info`` seeds the stage's info (e.g. sanity probes)."""
    config, dataset, fs_run = prepared.config, prepared.dataset, prepared.run
    info = dict(info or {})
    info["description"] = reranker.describe()  # loads the model before the clock starts
    t0 = time.perf_counter()
    model_scores = executor.score(reranker, dataset, prepared.shortlist, cache=cache)
    elapsed = time.perf_counter() - t0
    info["scoring_s"] = elapsed
    info["first_stage_recall_at_depth"] = {str(d): prepared.curve[d] for d in config.depths}
    info["executor"] = executor.run_info
    info.update(audit_reranker(rr_cfg.name, fs_run.ranking, model_scores, dataset.qrels,
                               config.depths, k=config.audit.k,
                               relevance_threshold=config.relevance_threshold,
                               reports_dir=reports_dir, append=append_audit))
    evaluations: dict[int | None, Evaluation] = {}
    for depth in config.depths:
        run = fs_run.rerank_at_depth(model_scores, depth, f"{rr_cfg.name}@{depth}")
        write_trec_run(run, runs_dir / f"{rr_cfg.name}.depth{depth}.trec", tag=rr_cfg.name)
        evaluations[depth] = evaluate_ranking(run.ranking, dataset.qrels, config.metrics,
                                              config.relevance_threshold)
    _write_model_scores(model_scores, runs_dir / f"{rr_cfg.name}.scores.tsv")
    info.update(benchmark_reranker(
        reranker, dataset, config, first_stage=fs_run, shortlist=prepared.shortlist,
        model_scores=model_scores, evaluations=evaluations, scoring_s=elapsed,
        description=info["description"], log=log, measure_latency=executor.measure_latency))
    return StageResult(name=rr_cfg.name, kind=rr_cfg.kind, model=reranker.model_id,
                       evaluations=evaluations,
                       info={**info, "pairs_scored": reranker.stats.pairs_scored,
                             "pairs_from_cache": reranker.stats.pairs_from_cache,
                             "pairs_truncated": reranker.stats.pairs_truncated,
                             **reranker.stats.extra})  # e.g. hosted usage, cost, latency


def log_stage(stage: StageResult, prepared: PreparedDataset, log: Log = print) -> None:
    for depth, evaluation in stage.evaluations.items():
        if depth is not None:
            log(f"{stage.name} @{depth}: " + _fmt(evaluation.means)
                + f"  (first-stage recall@{depth}={prepared.curve[depth]:.4f})")


def log_hardware(log: Log = print) -> dict[str, Any]:
    hardware = hardware_fingerprint()
    log(f"hardware {hardware['id']}: {hardware['cpu_model']}, {hardware['threads_used']} "
        f"threads, GPU {hardware['gpu_model'] or 'none'}")
    return hardware


def run_experiment(config: ExperimentConfig, *, out_dir: Path | None = None,
                   log: Log = print) -> ExperimentResult:
    """Run the whole experiment described by ``config``."""
    from rerank_eval.reports.render import write_report
    from rerank_eval.runner.results import results_dict, write_results

    runs_dir = (out_dir / "runs") if out_dir else Path("runs") / config.name
    reports_dir = out_dir if out_dir else Path("reports") / config.name
    hardware = log_hardware(log)

    # Build every reranker before any work so a bad model reference fails fast (models load
    # lazily, on first use).
    rerankers = [build_reranker(r.name, r.kind, r.params, base_dir=config.base_dir)
                 for r in config.rerankers]
    # So is the executor (``executor: ray`` without Ray installed fails here). A failed score()
    # releases its workers itself; Ray stops any others when this process exits.
    executor = make_executor(config.executor)

    prepared = prepare_first_stage(config, log=log)
    result = ExperimentResult(config=config, dataset=prepared.dataset,
                              first_stage=prepared.first_stage, rerankers=[], runs_dir=runs_dir,
                              reports_dir=reports_dir, timings=prepared.timings,
                              hardware=hardware)
    write_first_stage(prepared, runs_dir, reports_dir)
    write_results(result)

    cache = open_cache(config.cache.enabled, config.cache.path) if config.rerankers else None
    if cache is not None:
        log(f"score cache: {cache.path}")
    for rr_cfg, reranker in zip(config.rerankers, rerankers):
        stage = score_reranker(prepared, rr_cfg, reranker, executor, cache, runs_dir=runs_dir,
                               reports_dir=reports_dir,
                               info=sanity_info(reranker, log) if config.sanity_check else None,
                               append_audit=bool(result.rerankers), log=log)
        reranker.close()
        result.rerankers.append(stage)
        write_results(result)
        log_stage(stage, prepared, log)
    if cache is not None:
        cache.close()
    report = write_report([results_dict(result)], reports_dir)
    log(f"report: {report}")
    executor.close()
    return result


def _write_model_scores(scores: dict[str, dict[str, float]], path: Path) -> None:
    """Raw model scores (query id, doc id, score), the input to every depth's ranking."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("query_id\tdoc_id\tscore\n")
        for q in sorted(scores):
            for d, s in scores[q].items():
                f.write(f"{q}\t{d}\t{s!r}\n")


def _fmt(means: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.4f}" for k, v in means.items())
