"""Experiment configuration: parsed from YAML and validated once, at the edge.

Every later stage receives these dataclasses, never raw dicts from the file. Unknown keys are
an error naming the field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerank_eval.errors import InputError
from rerank_eval.metrics import MetricSpec, parse_metric, parse_metrics
from rerank_eval.scoring.executors import ExecutorConfig
from rerank_eval.scoring.latency import LatencyConfig
from rerank_eval.yaml_file import read_yaml

DATASET_SOURCES = ("beir", "irds", "trec", "bundled")
TOP_LEVEL_KEYS = {
    "name", "dataset", "first_stage", "rerankers", "depths", "metrics",
    "relevance_threshold", "sanity_check", "audit", "latency", "recommendation", "cache",
    "executor", "datasets",
}
EXECUTOR_KINDS = ("local", "ray")
RAY_KEYS = {"address", "num_cpus_per_worker", "num_gpus_per_worker", "workers"}


@dataclass
class SampleConfig:
    queries: int
    seed: int = 0


@dataclass
class DatasetConfig:
    source: str
    spec: Any
    split: str = "test"
    sample: SampleConfig | None = None
    drop_self_matches: bool = False
    qrels: str | None = None
    name: str | None = None  # a sweep's name for it (its folder under the reports root)


@dataclass
class FirstStageConfig:
    kind: str
    params: Any
    depth: int
    where: str = "first_stage"  # its place in the config, for error messages


@dataclass
class RerankerConfig:
    name: str
    kind: str
    params: dict[str, Any]


@dataclass
class AuditConfig:
    """The output cut ``k`` the audit checks: which relevant passages the reranker moved
    into or out of the top k (what a user or an LLM sees)."""

    k: int = 10


@dataclass
class RecommendationConfig:
    """How the recommended rerank depth is chosen, and which output cuts are reported."""

    metric: str = "ndcg@10"
    tolerance: float = 0.005
    latency_budget_ms: float | None = None
    latency_stat: str = "p95"
    output_k: list[int] = field(default_factory=lambda: [3, 5, 10])
    output_measures: list[str] = field(default_factory=lambda: ["ndcg", "recall"])


@dataclass
class CacheConfig:
    """The score cache: on by default; ``path`` None means $RERANK_EVAL_CACHE or the user's
    cache directory (see scoring/cache.py)."""

    enabled: bool = True
    path: Path | None = None


@dataclass
class ExperimentConfig:
    name: str
    dataset: DatasetConfig
    first_stage: FirstStageConfig
    rerankers: list[RerankerConfig]
    depths: list[int]
    metrics: list[MetricSpec]
    relevance_threshold: int = 1
    sanity_check: bool = True
    audit: AuditConfig = field(default_factory=AuditConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    recommendation: RecommendationConfig = field(default_factory=RecommendationConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    base_dir: Path = field(default_factory=Path.cwd)
    source_path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> dict[str, Any]:
        """The config as it was understood, with defaults filled in (for results.json)."""
        return {
            "name": self.name,
            "dataset": {
                **({} if self.dataset.name is None else {"name": self.dataset.name}),
                self.dataset.source: self.dataset.spec,
                "split": self.dataset.split,
                "sample": None if self.dataset.sample is None else vars(self.dataset.sample),
                "drop_self_matches": self.dataset.drop_self_matches,
                "qrels": self.dataset.qrels,
            },
            "first_stage": {self.first_stage.kind: self.first_stage.params,
                            "depth": self.first_stage.depth},
            "rerankers": [{"name": r.name, "kind": r.kind, **r.params} for r in self.rerankers],
            "depths": self.depths,
            "metrics": [m.name for m in self.metrics],
            "relevance_threshold": self.relevance_threshold,
            "sanity_check": self.sanity_check,
            "audit": {"k": self.audit.k},
            "latency": vars(self.latency),
            "recommendation": vars(self.recommendation),
            "cache": {"enabled": self.cache.enabled,
                      "path": None if self.cache.path is None else str(self.cache.path)},
            "executor": self.executor.resolved(),
        }


@dataclass
class SweepConfig:
    """Several datasets x rerankers (``datasets:``): one ExperimentConfig per dataset, each
    with its own dataset, name and first stage; rerankers, depths, metrics, cache and
    executor are the same in all of them."""

    name: str
    experiments: list[ExperimentConfig]
    base_dir: Path = field(default_factory=Path.cwd)
    source_path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> dict[str, Any]:
        """The sweep as understood: each dataset with its first stage, then the shared keys."""
        shared = self.experiments[0].resolved()
        datasets = []
        for exp in self.experiments:
            r = exp.resolved()
            datasets.append({**r["dataset"], "first_stage": r["first_stage"]})
        return {"name": self.name, "datasets": datasets,
                **{k: v for k, v in shared.items()
                   if k not in {"name", "dataset", "first_stage"}}}


def _fail(message: str) -> None:
    raise InputError(message)


def _mapping(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(f"{field}: expected a mapping, got {type(value).__name__}")
    return value


def _int(value: Any, field: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(f"{field}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        _fail(f"{field}: must be >= {minimum}, got {value}")
    return value


def _check_keys(mapping: dict[str, Any], allowed: set[str], field: str) -> None:
    unknown = sorted(set(mapping) - allowed, key=str)
    if unknown:
        _fail(f"{field}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _parse_dataset(raw: Any, where: str = "dataset",
                   extra_keys: frozenset[str] = frozenset()) -> DatasetConfig:
    """A dataset mapping; ``where`` names it in errors (``dataset`` or ``datasets[i]``)."""
    raw = _mapping(raw, where)
    _check_keys(raw, set(DATASET_SOURCES) | {"split", "sample", "drop_self_matches", "qrels"}
                | extra_keys, where)
    sources = [k for k in DATASET_SOURCES if k in raw]
    if len(sources) != 1:
        _fail(f"{where}: give exactly one of {', '.join(DATASET_SOURCES)}")
    sample = None
    if raw.get("sample") is not None:
        s = _mapping(raw["sample"], f"{where}.sample")
        _check_keys(s, {"queries", "seed"}, f"{where}.sample")
        sample = SampleConfig(queries=_int(s.get("queries"), f"{where}.sample.queries", 1),
                              seed=_int(s.get("seed", 0), f"{where}.sample.seed"))
    split = raw.get("split", "test")
    if not isinstance(split, str):
        _fail(f"{where}.split: expected a string")
    drop = raw.get("drop_self_matches", False)
    if not isinstance(drop, bool):
        _fail(f"{where}.drop_self_matches: expected true or false")
    qrels = raw.get("qrels")
    if qrels is not None and (sources[0] != "beir" or not isinstance(qrels, str)):
        _fail(f"{where}.qrels: a qrels file path, only with a beir folder")
    return DatasetConfig(source=sources[0], spec=raw[sources[0]], split=split, sample=sample,
                         drop_self_matches=drop, qrels=qrels)


def _default_dataset_name(ds: DatasetConfig) -> str:
    """A sweep dataset's name when none is given: the folder or collection it comes from."""
    if isinstance(ds.spec, str) and ds.spec.strip():
        name = Path(ds.spec.rstrip("/\\")).name if ds.source == "beir" else ds.spec
        return name.replace("/", "-").replace("\\", "-").replace(" ", "-")
    return ds.source


def _parse_sweep_datasets(raw: Any, base_dir: Path
                          ) -> list[tuple[DatasetConfig, FirstStageConfig | None]]:
    """``datasets:``: a non-empty list of dataset mappings, each with an optional ``name``
    (default: from its source, unique) and an optional ``first_stage`` of its own."""
    if not isinstance(raw, list) or not raw:
        _fail("datasets: expected a non-empty list of dataset mappings")
    out: list[tuple[DatasetConfig, FirstStageConfig | None]] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        where = f"datasets[{i}]"
        ds = _parse_dataset(item, where, frozenset({"name", "first_stage"}))
        name = item.get("name", _default_dataset_name(ds))
        if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\ \t"):
            _fail(f"{where}.name: expected a non-empty string without spaces or slashes")
        if name in names:
            _fail(f"{where}.name: duplicate dataset name {name!r} (name each dataset)")
        names.add(name)
        ds.name = name
        fs = None
        if item.get("first_stage") is not None:
            fs = _parse_first_stage(item["first_stage"], f"{where}.first_stage")
            _validate_first_stage_params(fs, base_dir)
        out.append((ds, fs))
    return out


def _parse_cache(raw: Any, base_dir: Path) -> CacheConfig:
    if raw is None:
        return CacheConfig()
    raw = _mapping(raw, "cache")
    _check_keys(raw, {"enabled", "path"}, "cache")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        _fail("cache.enabled: expected true or false")
    path = raw.get("path")
    if path is not None:
        if not isinstance(path, str) or not path.strip():
            _fail("cache.path: expected a file path")
        path = Path(os.path.expanduser(path))
        path = path if path.is_absolute() else base_dir / path
    return CacheConfig(enabled=enabled, path=path)


def _parse_first_stage(raw: Any, where: str = "first_stage") -> FirstStageConfig:
    from rerank_eval.first_stage import FIRST_STAGES

    raw = _mapping(raw, where)
    _check_keys(raw, set(FIRST_STAGES) | {"depth"}, where)
    kinds = [k for k in FIRST_STAGES if k in raw]
    if len(kinds) != 1:
        _fail(f"{where}: give exactly one of {', '.join(FIRST_STAGES)}")
    depth = _int(raw.get("depth", 100), f"{where}.depth", 1)
    params = raw[kinds[0]]
    if isinstance(params, dict):
        _check_keys(params, set(FIRST_STAGES[kinds[0]].allowed), f"{where}.{kinds[0]}")
    return FirstStageConfig(kind=kinds[0], params=params, depth=depth, where=where)


LATENCY_STATS = ("p50", "p95", "p99", "mean")


def _parse_latency(raw: Any) -> LatencyConfig:
    if raw is None:
        return LatencyConfig()
    raw = _mapping(raw, "latency")
    _check_keys(raw, {"queries", "warmup", "seed"}, "latency")
    default = LatencyConfig()
    return LatencyConfig(queries=_int(raw.get("queries", default.queries), "latency.queries", 0),
                         warmup=_int(raw.get("warmup", default.warmup), "latency.warmup", 0),
                         seed=_int(raw.get("seed", default.seed), "latency.seed"))


def _number(value: Any, field: str, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(f"{field}: expected a number, got {value!r}")
    if value < minimum:
        _fail(f"{field}: must be >= {minimum}, got {value}")
    return float(value)


def _parse_recommendation(raw: Any, metrics: list[MetricSpec]) -> RecommendationConfig:
    """The quality metric must be one of ``metrics``: the depth curve is computed for those."""
    raw = _mapping(raw if raw is not None else {}, "recommendation")
    _check_keys(raw, {"metric", "tolerance", "latency_budget_ms", "latency_stat", "output_k",
                      "output_measures"}, "recommendation")
    names = [m.name for m in metrics]
    if "metric" in raw:
        metric = parse_metrics([str(raw["metric"])], "recommendation.metric")[0].name
        if metric not in names:
            _fail(f"recommendation.metric: {metric} is not in metrics ({', '.join(names)})")
    else:
        metric = "ndcg@10" if "ndcg@10" in names else names[0]
    tolerance = _number(raw.get("tolerance", 0.005), "recommendation.tolerance", 0.0)
    budget = raw.get("latency_budget_ms")
    if budget is not None:
        budget = _number(budget, "recommendation.latency_budget_ms", 0.0)
    stat = raw.get("latency_stat", "p95")
    if stat not in LATENCY_STATS:
        _fail(f"recommendation.latency_stat: use one of {', '.join(LATENCY_STATS)}")
    ks = raw.get("output_k", [3, 5, 10])
    if not isinstance(ks, list) or not ks:
        _fail("recommendation.output_k: expected a non-empty list of integers, e.g. [3, 5, 10]")
    ks = sorted({_int(k, "recommendation.output_k", 1) for k in ks})
    measures = raw.get("output_measures", ["ndcg", "recall"])
    if not isinstance(measures, list) or not measures:
        _fail("recommendation.output_measures: expected a list such as [ndcg, recall]")
    measures = list(dict.fromkeys(
        parse_metric(f"{m}@1", "recommendation.output_measures").measure for m in measures))
    return RecommendationConfig(metric=metric, tolerance=tolerance, latency_budget_ms=budget,
                                latency_stat=stat, output_k=ks, output_measures=measures)


def _validate_first_stage_params(fs: FirstStageConfig, base_dir: Path) -> None:
    """Construct the stage once (cheap: no model is loaded) so bad parameters fail now, with
    the field named, rather than after the dataset has loaded."""
    from rerank_eval.first_stage import FIRST_STAGES

    FIRST_STAGES[fs.kind](fs.params, base_dir=base_dir, field=f"{fs.where}.{fs.kind}").close()


def _parse_rerankers(raw: Any) -> list[RerankerConfig]:
    from rerank_eval.rerankers import RERANKERS

    if raw is None:
        return []
    if not isinstance(raw, list):
        _fail("rerankers: expected a list")
    out: list[RerankerConfig] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        item = _mapping(item, f"rerankers[{i}]")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            _fail(f"rerankers[{i}].name: required, a non-empty string")
        if any(c in name for c in "/\\ \t"):
            _fail(f"rerankers[{i}].name: {name!r} must not contain spaces or slashes")
        if name in names:
            _fail(f"rerankers[{i}].name: duplicate name {name!r}")
        names.add(name)
        kind = item.get("kind")
        if not isinstance(kind, str):
            _fail(f"rerankers[{i}].kind: required (e.g. cross-encoder, bi-encoder)")
        params = {k: v for k, v in item.items() if k not in {"name", "kind"}}
        if kind not in RERANKERS:
            _fail(f"rerankers[{i}].kind: unknown kind {kind!r} "
                  f"(available: {', '.join(RERANKERS)})")
        _check_keys(params, set(RERANKERS[kind].allowed), f"rerankers[{name}]")
        out.append(RerankerConfig(name=name, kind=kind, params=params))
    return out


def _parse_audit(raw: Any) -> AuditConfig:
    if raw is None:
        return AuditConfig()
    raw = _mapping(raw, "audit")
    _check_keys(raw, {"k"}, "audit")
    return AuditConfig(k=_int(raw.get("k", 10), "audit.k", 1))


def _parse_executor(raw: Any) -> ExecutorConfig:
    """``local`` (default), ``ray``, or ``{ray: {address, num_cpus_per_worker, ...}}``."""
    if raw is None or raw == "local" or raw == {"local": None}:
        return ExecutorConfig()
    if raw == "ray":
        raw = {"ray": {}}
    if isinstance(raw, str):
        _fail(f"executor: unknown executor {raw!r} (use {' or '.join(EXECUTOR_KINDS)})")
    raw = _mapping(raw, "executor")
    _check_keys(raw, set(EXECUTOR_KINDS), "executor")
    if len(raw) != 1:
        _fail(f"executor: give exactly one of {', '.join(EXECUTOR_KINDS)}")
    if "local" in raw:
        _fail("executor.local: takes no options (write executor: local)")
    opts = _mapping(raw["ray"] if raw["ray"] is not None else {}, "executor.ray")
    _check_keys(opts, RAY_KEYS, "executor.ray")
    address = opts.get("address", "local")
    if not isinstance(address, str) or not address.strip():
        _fail("executor.ray.address: expected local, auto, ray://host:port or host:port")
    cpus = _number(opts.get("num_cpus_per_worker", 1), "executor.ray.num_cpus_per_worker", 0)
    gpus = _number(opts.get("num_gpus_per_worker", 0), "executor.ray.num_gpus_per_worker", 0)
    if cpus == 0 and gpus == 0:
        _fail("executor.ray: a worker needs num_cpus_per_worker or num_gpus_per_worker > 0")
    workers = opts.get("workers")
    if workers is not None:
        workers = _int(workers, "executor.ray.workers", 1)
    return ExecutorConfig(kind="ray", address=address, num_cpus_per_worker=cpus,
                          num_gpus_per_worker=gpus, workers=workers)


def parse_config(raw: Any, *, base_dir: Path,
                 source_path: Path | None = None) -> ExperimentConfig | SweepConfig:
    """Validate a config mapping: one experiment (``dataset:``) or a sweep (``datasets:``).
    Relative paths in it resolve against ``base_dir``."""
    raw = _mapping(raw, "config")
    _check_keys(raw, TOP_LEVEL_KEYS, "config")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\ "):
        _fail("name: required, a non-empty string without spaces or slashes")
    if "dataset" in raw and "datasets" in raw:
        _fail("datasets: give either dataset (one experiment) or datasets (a sweep), not both")
    if "datasets" not in raw:
        for key in ("dataset", "first_stage"):
            if key not in raw:
                _fail(f"{key}: required")
        dataset = _parse_dataset(raw["dataset"])
    top_fs = None
    if "first_stage" in raw:
        top_fs = _parse_first_stage(raw["first_stage"])
        _validate_first_stage_params(top_fs, base_dir)
    if "datasets" in raw:
        entries = _parse_sweep_datasets(raw["datasets"], base_dir)
        for i, (_, fs) in enumerate(entries):
            if fs is None and top_fs is None:
                _fail(f"datasets[{i}].first_stage: required (there is no top-level first_stage)")
        cells = [(ds, fs or top_fs) for ds, fs in entries]
    else:
        cells = [(dataset, top_fs)]
    shared = _parse_shared(raw, top_fs or cells[0][1], [fs for _, fs in cells], base_dir)
    experiments = [
        ExperimentConfig(name=name if "datasets" not in raw else f"{name}-{ds.name}",
                         dataset=ds, first_stage=fs, **shared, base_dir=base_dir,
                         source_path=source_path, raw=raw)
        for ds, fs in cells]
    if "datasets" not in raw:
        return experiments[0]
    return SweepConfig(name=name, experiments=experiments, base_dir=base_dir,
                       source_path=source_path, raw=raw)


def _parse_shared(raw: dict[str, Any], first_stage: FirstStageConfig,
                  first_stages: list[FirstStageConfig], base_dir: Path) -> dict[str, Any]:
    """Everything but the dataset and first stage (the same in every cell of a sweep).
    Defaults that depend on the depth come from ``first_stage``; every depth must fit each of
    ``first_stages``."""
    rerankers = _parse_rerankers(raw.get("rerankers"))
    depths_raw = raw.get("depths", [first_stage.depth])
    if not isinstance(depths_raw, list) or not depths_raw:
        _fail("depths: expected a non-empty list of integers")
    depths = sorted({_int(d, "depths", 1) for d in depths_raw})
    for fs in first_stages:
        if depths[-1] > fs.depth:
            _fail(f"depths: {depths[-1]} exceeds {fs.where}.depth {fs.depth}")
    metrics_raw = raw.get("metrics", ["ndcg@10", "mrr@10", f"recall@{first_stage.depth}",
                                      f"map@{first_stage.depth}"])
    if not isinstance(metrics_raw, list) or not metrics_raw:
        _fail("metrics: expected a non-empty list such as [ndcg@10, recall@100]")
    metrics = parse_metrics([str(m) for m in metrics_raw])
    threshold = _int(raw.get("relevance_threshold", 1), "relevance_threshold", 1)
    sanity = raw.get("sanity_check", True)
    if not isinstance(sanity, bool):
        _fail("sanity_check: expected true or false")
    return {
        "rerankers": rerankers, "depths": depths, "metrics": metrics,
        "relevance_threshold": threshold, "sanity_check": sanity,
        "audit": _parse_audit(raw.get("audit")),
        "latency": _parse_latency(raw.get("latency")),
        "recommendation": _parse_recommendation(raw.get("recommendation"), metrics),
        "cache": _parse_cache(raw.get("cache"), base_dir),
        "executor": _parse_executor(raw.get("executor")),
    }


def load_config(path: str | Path) -> ExperimentConfig | SweepConfig:
    """Read and validate a YAML config; errors name the file and the field or line."""
    path = Path(path)
    raw = read_yaml(path, "config")
    try:
        return parse_config(raw, base_dir=path.resolve().parent, source_path=path)
    except InputError as e:
        if e.path is None:
            raise InputError(str(e), path=path) from None
        raise
