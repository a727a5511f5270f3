"""The runner's steps: load a dataset and run its first stage, score one reranker on it and
evaluate every depth, write runs. ``run.py`` orders them for an experiment or a sweep."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerank_eval.analysis.audit import audit_reranker
from rerank_eval.config import ExperimentConfig, RerankerConfig
from rerank_eval.datasets import Dataset, load_dataset
from rerank_eval.files import atomic_open
from rerank_eval.first_stage import FIRST_STAGES
from rerank_eval.hardware import hardware_fingerprint
from rerank_eval.metrics import Evaluation, evaluate_ranking
from rerank_eval.metrics.recall_curve import recall_curve
from rerank_eval.rerankers.base import Reranker
from rerank_eval.rerankers.listwise import ListwiseReranker
from rerank_eval.rerankers.sanity import run_sanity_probes
from rerank_eval.results import (
    ExecutorRun,
    FirstStage,
    LatencyStats,
    LongDocs,
    RerankerEntry,
    Sanity,
)
from rerank_eval.runner.cost import ScoringPass, benchmark_reranker, measure_pass
from rerank_eval.runner.results import StageResult
from rerank_eval.runs import MODEL_SCORES_HEADER, Run, write_trec_run
from rerank_eval.scoring.cache import ScoreCache
from rerank_eval.scoring.executors import Executor
from rerank_eval.scoring.latency import measure_first_stage_latency
from rerank_eval.scoring.listwise import rank_shortlist
from rerank_eval.scoring.windows import score_documents

logger = logging.getLogger(__name__)


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


def prepare_first_stage(config: ExperimentConfig) -> PreparedDataset:
    """Load the dataset, run the first stage, evaluate it and time it per query."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    dataset = prepare_dataset(config)
    timings["load_dataset_s"] = time.perf_counter() - t0
    logger.info(f"dataset {dataset.id}: {len(dataset.queries)} queries, "
                f"{len(dataset.corpus)} documents")

    fs_cfg = config.first_stage
    first_stage = FIRST_STAGES[fs_cfg.kind](fs_cfg.params, base_dir=config.base_dir,
                                            field=f"{fs_cfg.where}.{fs_cfg.kind}")
    t0 = time.perf_counter()
    fs_run = first_stage.retrieve(dataset, fs_cfg.depth)
    if config.dataset.drop_self_matches:
        fs_run = fs_run.drop_self_matches()
    timings["first_stage_s"] = time.perf_counter() - t0
    fs_eval = evaluate_ranking(fs_run.ranking, dataset.qrels, config.resolved_metrics,
                               config.relevance_threshold)
    curve = recall_curve(fs_run.ranking, dataset.qrels, fs_cfg.depth,
                         config.relevance_threshold, extra=config.resolved_depths)
    latency = measure_first_stage_latency(first_stage.query_searcher(dataset, fs_cfg.depth),
                                          dataset, config.latency)
    fs_result = StageResult(name=first_stage.name, kind=fs_cfg.kind, model=None,
                            evaluations={None: fs_eval},
                            info=FirstStage(
                                name=first_stage.name, depth=fs_cfg.depth,
                                latency_ms=LatencyStats.model_validate(latency)
                                if latency is not None else None,
                                params=first_stage.describe(),
                                recall_curve={str(k): v for k, v in curve.items()}))
    first_stage.close()
    logger.info(f"first stage {first_stage.name}: " + _fmt(fs_eval.means))
    logger.info("first-stage recall curve (the reranking ceiling): "
        + "  ".join(f"@{k}={v:.4f}" for k, v in curve.items()))
    return PreparedDataset(config=config, dataset=dataset, run=fs_run,
                           shortlist=fs_run.top(max(config.resolved_depths)), first_stage=fs_result,
                           curve=curve, timings=timings)


def write_first_stage(prepared: PreparedDataset, runs_dir: Path, reports_dir: Path) -> None:
    """The first stage's TREC run and its recall plot."""
    from rerank_eval.reports.recall_plot import write_recall_plot

    config = prepared.config
    write_trec_run(prepared.run, runs_dir / "first_stage.trec", tag=prepared.first_stage.name)
    write_recall_plot(prepared.curve, reports_dir / "first_stage_recall.png",
                      depths=config.resolved_depths,
                      title=f"{config.name}: first-stage recall ({prepared.first_stage.name}, "
                            f"{prepared.dataset.id})")


def sanity_info(reranker: Reranker) -> Sanity:
    """The obvious-pair probes (a property of the model, not of the dataset)."""
    sanity = run_sanity_probes(reranker)
    if sanity.failed:
        logger.warning(f"{reranker.name} ranks the irrelevant passage first on "
                       f"{sanity.inverted}/{sanity.probes} obvious sanity probes: check label "
                       "index, pair order and score sign (or the model is untrained); it gets "
                       "no recommendation and the report flags it")
    return Sanity(**sanity.as_dict())


def score_reranker(prepared: PreparedDataset, rr_cfg: RerankerConfig, reranker: Reranker,
                   executor: Executor, cache: ScoreCache | None, *, runs_dir: Path,
                   reports_dir: Path, sanity: Sanity | None = None,
                   append_audit: bool = False) -> StageResult:
    """Score the shortlist with one reranker, evaluate it at every depth, write its runs and
    scores, and measure its cost (``sanity``: its probes, when they ran). With
    ``max_lengths`` the shortlist is scored again at each other length (the model reloaded
    with that ``max_length``); with ``long_docs`` passages are scored as token windows; a
    listwise reranker ranks each depth in its own sliding-window pass."""
    config, dataset, fs_run = prepared.config, prepared.dataset, prepared.run
    depths = config.resolved_depths
    if isinstance(reranker, ListwiseReranker):
        main, per_depth, extra = _listwise_pass(prepared, reranker, cache)
        executor_info: dict[str, Any] = {"kind": "local",
                                         "queries_in_flight": reranker.concurrency}
    else:
        main = _scoring_pass(prepared, reranker, executor, cache, None)
        per_depth = {d: main.model_scores for d in depths}
        extra = {}
        executor_info = executor.run_info
    audit = audit_reranker(rr_cfg.name, fs_run.ranking, main.model_scores, dataset.qrels,
                           depths, k=config.audit.k,
                           relevance_threshold=config.relevance_threshold,
                           reports_dir=reports_dir, append=append_audit, per_depth=per_depth)
    for depth in depths:
        run = fs_run.rerank_at_depth(per_depth[depth], depth, f"{rr_cfg.name}@{depth}")
        write_trec_run(run, runs_dir / f"{rr_cfg.name}.depth{depth}.trec", tag=rr_cfg.name)
    _write_model_scores(main.model_scores, runs_dir / f"{rr_cfg.name}.scores.tsv")
    main.cost = measure_pass(reranker, main, dataset, config, prepared.shortlist,
                             executor.measure_latency)
    others = _other_lengths(prepared, reranker, executor, cache, main)
    cost = benchmark_reranker(
        reranker, dataset, config, first_stage=fs_run,
        first_stage_eval=prepared.first_stage.evaluations[None], main=main, others=others,
        sanity=sanity, per_depth=per_depth)
    if isinstance(reranker, ListwiseReranker):
        cost["score_distribution"] = None  # its scores are ranks: nothing to show
        cost["latency_setup"]["skipped"] = ("listwise: no probes (each is a generation); "
                                            "per-window latency in listwise.window_latency_ms")
    queries_cut = reranker.queries_truncated(
        [dataset.queries[q] for q in prepared.shortlist.ranking if q in dataset.queries])
    if queries_cut:
        logger.info(f"{rr_cfg.name}: {queries_cut:,} of {len(prepared.shortlist.ranking):,} "
                    "queries cut before scoring (longer than the query's share of the window)")
    stats = main.stats
    entry = RerankerEntry(
        name=rr_cfg.name, kind=rr_cfg.kind, model=reranker.model_id,
        score_transform=reranker.score_transform,
        pairs_scored=stats.pairs_scored, pairs_from_cache=stats.pairs_from_cache,
        pairs_truncated=stats.pairs_truncated, queries_truncated=queries_cut, sanity=sanity,
        description=main.description, scoring_s=main.scoring_s,
        executor=ExecutorRun.model_validate(executor_info),
        long_docs=_long_docs(reranker, main, prepared.shortlist),
        first_stage_recall_at_depth={str(d): prepared.curve[d] for d in depths},
        **audit, **cost, **stats.extra, **extra)  # stats.extra: e.g. hosted usage, cost
    evaluations: dict[int | None, Evaluation] = {d: ev for d, ev in main.evaluations.items()}
    return StageResult(name=rr_cfg.name, kind=rr_cfg.kind, model=reranker.model_id,
                       evaluations=evaluations, info=entry)


def _other_lengths(prepared: PreparedDataset, reranker: Reranker, executor: Executor,
                   cache: ScoreCache | None, main: ScoringPass) -> list[ScoringPass]:
    """With ``max_lengths``: one more measured pass per other length (the model reloaded with
    that ``max_length``); ``main`` is labelled with the reranker's own length."""
    own_length = getattr(reranker.params, "max_length", None)
    lengths = getattr(reranker.params, "max_lengths", None) or []
    if lengths:
        main.max_length = own_length
    others = []
    for length in sorted(set(lengths) - {own_length}):
        variant = reranker.variant(max_length=length)
        try:
            other = _scoring_pass(prepared, variant, executor, cache, length)
            other.cost = measure_pass(variant, other, prepared.dataset, prepared.config,
                                      prepared.shortlist, executor.measure_latency)
            others.append(other)
        finally:
            variant.close()
    return others


def _long_docs(reranker: Reranker, main: ScoringPass, shortlist: Run) -> LongDocs | None:
    if main.split is None:
        return None
    ld = reranker.params.long_docs  # type: ignore[attr-defined]
    return LongDocs(strategy=ld.strategy, passage_tokens=ld.passage_tokens, stride=ld.stride,
                    documents=main.split.documents, windows=main.split.pairs,
                    documents_split=main.split.documents_split(shortlist))


def _listwise_pass(prepared: PreparedDataset, reranker: ListwiseReranker,
                   cache: ScoreCache | None
                   ) -> tuple[ScoringPass, dict[int, dict[str, dict[str, float]]], dict[str, Any]]:
    """Each depth is its own sliding-window pass (scoring/listwise.py), in this process: the
    pass (scores of the deepest), each depth's own scores, and the listwise counts."""
    config, dataset, fs_run = prepared.config, prepared.dataset, prepared.run
    description = reranker.describe()
    waited_before = reranker.stats.retry_wait_s
    t0 = time.perf_counter()
    ranked = rank_shortlist(reranker, dataset, prepared.shortlist, config.resolved_depths,
                            cache=cache)
    elapsed = time.perf_counter() - t0
    per_depth: dict[int, dict[str, dict[str, float]]] = ranked.scores
    evaluations = {}
    for depth in config.resolved_depths:
        run = fs_run.rerank_at_depth(per_depth[depth], depth, f"{reranker.name}@{depth}")
        evaluations[depth] = evaluate_ranking(run.ranking, dataset.qrels,
                                              config.resolved_metrics,
                                              config.relevance_threshold)
    queries = sum(1 for docs in prepared.shortlist.ranking.values() if docs)
    extra = {"listwise": ranked.info(reranker, queries), **reranker.usage()}
    main = ScoringPass(max_length=None, model_scores=per_depth[max(config.resolved_depths)],
                       evaluations=evaluations, scoring_s=elapsed, description=description,
                       stats=copy.deepcopy(reranker.stats),
                       retry_wait_s=reranker.stats.retry_wait_s - waited_before)
    return main, per_depth, extra


def _scoring_pass(prepared: PreparedDataset, reranker: Reranker, executor: Executor,
                  cache: ScoreCache | None, max_length: int | None) -> ScoringPass:
    """One pass over the shortlist (through windows with ``long_docs``), evaluated at every
    depth, with the reranker's counters for it."""
    config, dataset, fs_run = prepared.config, prepared.dataset, prepared.run
    description = reranker.describe()  # loads the model before the clock starts
    if max_length is not None:
        logger.info(f"{reranker.name}: scoring at max_length {max_length}")
    waited_before = reranker.stats.retry_wait_s
    t0 = time.perf_counter()
    scores, split = score_documents(executor, reranker, dataset, prepared.shortlist, cache,
                                    getattr(reranker.params, "long_docs", None))
    elapsed = time.perf_counter() - t0
    if split is not None:
        logger.info(f"{reranker.name}: {split.documents:,} documents scored as "
                    f"{split.pairs:,} windows")
    evaluations = {}
    for depth in config.resolved_depths:
        run = fs_run.rerank_at_depth(scores, depth, f"{reranker.name}@{depth}")
        evaluations[depth] = evaluate_ranking(run.ranking, dataset.qrels,
                                              config.resolved_metrics,
                                              config.relevance_threshold)
    return ScoringPass(max_length=max_length, model_scores=scores, evaluations=evaluations,
                       scoring_s=elapsed, description=description,
                       stats=copy.deepcopy(reranker.stats), split=split,
                       retry_wait_s=reranker.stats.retry_wait_s - waited_before)


def log_stage(stage: StageResult, prepared: PreparedDataset) -> None:
    for depth, evaluation in stage.evaluations.items():
        if depth is not None:
            logger.info(f"{stage.name} @{depth}: " + _fmt(evaluation.means)
                        + f"  (first-stage recall@{depth}={prepared.curve[depth]:.4f})")


def log_hardware() -> dict[str, Any]:
    hardware = hardware_fingerprint()
    logger.info(f"hardware {hardware['id']}: {hardware['cpu_model']}, "
                f"{hardware['threads_used']} threads, GPU {hardware['gpu_model'] or 'none'}")
    return hardware


def _write_model_scores(scores: dict[str, dict[str, float]], path: Path) -> None:
    """Raw model scores (query id, doc id, score), the input to every depth's ranking."""
    with atomic_open(path) as f:
        f.write(MODEL_SCORES_HEADER + "\n")
        for q in sorted(scores):
            for d, s in scores[q].items():
                f.write(f"{q}\t{d}\t{s!r}\n")


def _fmt(means: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.4f}" for k, v in means.items())
