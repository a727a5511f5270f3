"""Experiment configuration: the YAML file, validated once, at the edge, by pydantic models.

Every section's model lives with what it configures (``datasets/config.py``, the first stages
and rerankers with their classes, ``scoring/``, ``analysis/``); this module composes them into
an experiment (``dataset:``) or a sweep (``datasets:``) and checks what spans sections (every
depth within the first stage's, the recommendation metric among the metrics, unique names).
Later stages receive these models, never raw dicts. Errors are one line naming the file, the
line and the field (``configs/x.yaml:12: rerankers[1].batch_size: ...``);
:func:`config_json_schema` is the JSON Schema of the file (``rerank-eval schema``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    TypeAdapter,
    model_validator,
)

from rerank_eval.analysis.audit import AuditConfig
from rerank_eval.analysis.recommend import RecommendationConfig
from rerank_eval.datasets.config import DatasetConfig, SampleConfig
from rerank_eval.errors import InputError
from rerank_eval.first_stage import FirstStageConfig, FirstStageSection
from rerank_eval.metrics import MetricSpec, parse_metric, parse_metrics
from rerank_eval.params import (
    NAME_RULE,
    Bool,
    FieldError,
    Name,
    Params,
    PositiveInt,
    check_before,
    expected,
    field_error,
    is_non_empty_list,
    is_safe_name,
    parse,
    type_name,
)
from rerank_eval.rerankers import RerankerEntry, Rerankers
from rerank_eval.scoring.cache import CacheConfig
from rerank_eval.scoring.executors import ExecutorConfig
from rerank_eval.scoring.latency import LatencyConfig
from rerank_eval.yaml_file import read_yaml_lines

#: A ``rerankers:`` entry (``name``, ``kind`` and the kind's ``params``).
RerankerConfig = RerankerEntry


def _metrics(value: Any) -> list[MetricSpec]:
    """``metrics:``: names such as ndcg@10, parsed (duplicates dropped)."""
    if not is_non_empty_list(value):
        raise field_error("expected a non-empty list such as [ndcg@10, recall@100]")
    specs: dict[str, MetricSpec] = {}
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise field_error(f"expected a metric name such as ndcg@10, got {item!r}", i)
        try:
            spec = parse_metric(item)
        except InputError as e:
            raise field_error(str(e).removeprefix("metrics: "), i) from None
        specs.setdefault(spec.name, spec)
    return list(specs.values())


Metrics = Annotated[list[MetricSpec],
                    PlainValidator(_metrics, json_schema_input_type=list[str]),
                    PlainSerializer(lambda specs: [s.name for s in specs]),
                    Field(json_schema_extra={"minItems": 1})]
Depths = Annotated[list[PositiveInt], Field(min_length=1),
                   expected("a non-empty list of integers")]


def _check_shared(config: ExperimentConfig | SweepConfig, first_stages: list[FirstStageSection],
                  default: FirstStageSection) -> None:
    """Fill the defaults that depend on the first stage's depth and on the metrics; every
    depth must fit each of ``first_stages``."""
    depths = sorted(set(config.depths or [default.depth]))
    for fs in first_stages:
        if depths[-1] > fs.depth:
            raise field_error(f"{depths[-1]} exceeds {fs.where}.depth {fs.depth}", "depths")
    config.depths = depths
    timed = config.latency.depths
    if timed is not None:
        for i, d in enumerate(timed):
            if d not in depths:
                raise field_error(f"{d} is not one of depths ({', '.join(map(str, depths))})",
                                  "latency", "depths", i)
        config.latency.depths = sorted(set(timed))
    if config.metrics is None:
        config.metrics = parse_metrics(["ndcg@10", "mrr@10", f"recall@{default.depth}",
                                        f"map@{default.depth}"])
    names = [m.name for m in config.metrics]
    rec = config.recommendation
    if "metric" in rec.model_fields_set:
        if rec.metric not in names:
            raise field_error(f"{rec.metric} is not in metrics ({', '.join(names)})",
                              "recommendation", "metric")
    else:
        rec.metric = "ndcg@10" if "ndcg@10" in names else names[0]


class _Located(Params):
    """Where a config came from (set by :func:`parse_config`)."""

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source_path: Path | None = PrivateAttr(None)
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the config resolve against (the config's)."""
        return self._base_dir

    @property
    def source_path(self) -> Path | None:
        """The YAML file this config came from (None: built in Python)."""
        return self._source_path

    @property
    def raw(self) -> dict[str, Any]:
        """The mapping as written."""
        return self._raw

    def _locate(self, base_dir: Path, source_path: Path | None, raw: dict[str, Any]) -> None:
        self._base_dir, self._source_path, self._raw = base_dir, source_path, raw


class _SharedSections(_Located):
    """What every dataset of a config shares: rerankers, depths, metrics, cost measurement,
    cache and executor (one experiment's, or each cell's of a sweep)."""

    rerankers: Rerankers = []
    depths: Depths | None = None
    """Rerank depths (each <= first_stage.depth; default: [first_stage.depth])."""
    metrics: Metrics | None = None
    """Default: [ndcg@10, mrr@10, recall@<depth>, map@<depth>]."""
    relevance_threshold: PositiveInt = 1
    """The grade binary metrics count as relevant."""
    sanity_check: Bool = True
    """Score obvious (query, relevant, irrelevant) probes with every reranker first."""
    audit: AuditConfig = Field(default_factory=AuditConfig)
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    recommendation: RecommendationConfig = Field(default_factory=RecommendationConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)

    @property
    def resolved_depths(self) -> list[int]:
        """``depths`` as validation filled them in (sorted, unique, never None)."""
        if self.depths is None:
            raise RuntimeError("depths are filled in by validation: build configs with "
                               "parse_config or the model's constructor")
        return self.depths

    @property
    def resolved_metrics(self) -> list[MetricSpec]:
        """``metrics`` as validation filled them in (never None)."""
        if self.metrics is None:
            raise RuntimeError("metrics are filled in by validation: build configs with "
                               "parse_config or the model's constructor")
        return self.metrics


class ExperimentConfig(_SharedSections):
    """One experiment: a dataset, its first stage, and rerankers scored at each depth."""

    name: Annotated[Name, Field(description="Names the results folder (reports/<name>/).")]
    dataset: DatasetConfig
    first_stage: FirstStageConfig

    @model_validator(mode="after")
    def _across_sections(self) -> ExperimentConfig:
        _check_shared(self, [self.first_stage], self.first_stage)
        return self

    @property
    def dataset_name(self) -> str:
        """The dataset's name: its ``name`` in a sweep (its folder there), else one from its
        source (as a sweep would name it)."""
        ds = self.dataset
        name = ds.name if isinstance(ds, SweepDataset) else None
        return name or _default_dataset_name(ds)

    def resolved(self) -> dict[str, Any]:
        """The config as it was understood, with defaults filled in (for results.json)."""
        ds, fs = self.dataset, self.first_stage
        name = getattr(ds, "name", None)
        return {
            "name": self.name,
            "dataset": {
                **({} if name is None else {"name": name}),
                ds.source: ds.spec,
                "split": ds.split,
                "sample": None if ds.sample is None else ds.sample.model_dump(),
                "drop_self_matches": ds.drop_self_matches,
                "qrels": ds.qrels,
            },
            "first_stage": {fs.kind: fs.params.model_dump(exclude_unset=True),
                            "depth": fs.depth},
            "rerankers": [{"name": r.name, "kind": r.kind,
                           **({"optional": True} if r.optional else {}),
                           **({} if r.sanity is None else {"sanity": r.sanity}),
                           **r.params.model_dump(exclude_unset=True)} for r in self.rerankers],
            "depths": self.depths,
            "metrics": [m.name for m in self.resolved_metrics],
            "relevance_threshold": self.relevance_threshold,
            "sanity_check": self.sanity_check,
            "audit": self.audit.model_dump(),
            "latency": self.latency.model_dump(),
            "recommendation": self.recommendation.model_dump(),
            "cache": self.cache.resolved(),
            "executor": self.executor.resolved(),
        }


def _default_dataset_name(ds: DatasetConfig) -> str:
    """A sweep dataset's name when none is given: the folder or collection it comes from, each
    run of characters a name may not hold (``my data (v2)``) made one '-'."""
    if isinstance(ds.spec, str) and ds.spec.strip():
        name = Path(ds.spec.rstrip("/\\")).name if ds.source == "beir" else ds.spec
        return re.sub(r"[^A-Za-z0-9._]+", "-", name).strip("-")
    return ds.source


class SweepDataset(DatasetConfig):
    """One dataset of a sweep: a dataset mapping, with an optional ``name`` (default: from its
    source) and ``first_stage`` (default: the top-level one)."""

    name: Name | None = None
    """Its folder under the sweep's reports (default: its folder or collection name)."""
    first_stage: FirstStageConfig | None = None

    @model_validator(mode="after")
    def _default_name(self) -> SweepDataset:
        if self.name is None:
            name = _default_dataset_name(self)
            if not is_safe_name(name):
                raise field_error(f"no name can be made from its source {self.spec!r}: give "
                                  f"one ({NAME_RULE})", "name")
            self.name = name
        return self


class SweepConfig(_SharedSections):
    """Several datasets x rerankers (``datasets:``): one ExperimentConfig per dataset
    (``experiments``), each with its own dataset, name and first stage; rerankers, depths,
    metrics, cache and executor are the same in all of them."""

    name: Annotated[Name, Field(description="Names the sweep's folder (reports/<name>/).")]
    datasets: Annotated[list[SweepDataset], Field(min_length=1), check_before(
        is_non_empty_list, "expected a non-empty list of dataset mappings")]
    first_stage: FirstStageConfig | None = None
    """The first stage of every dataset without one of its own."""

    _experiments: list[ExperimentConfig] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _across_sections(self) -> SweepConfig:
        names: set[str] = set()
        cells: list[tuple[SweepDataset, FirstStageSection]] = []
        for i, ds in enumerate(self.datasets):
            assert ds.name is not None
            if ds.name in names:
                raise field_error(f"duplicate dataset name {ds.name!r} (name each dataset)",
                                  "datasets", i, "name")
            names.add(ds.name)
            fs = ds.first_stage or self.first_stage
            if fs is None:
                raise field_error("required (there is no top-level first_stage)",
                                  "datasets", i, "first_stage")
            if ds.first_stage is not None:
                ds.first_stage._where = f"datasets[{i}].first_stage"
            cells.append((ds, fs))
        _check_shared(self, [fs for _, fs in cells], self.first_stage or cells[0][1])
        if not self.rerankers:
            raise field_error("a sweep needs at least one reranker (its report is a dataset x "
                              "reranker table); for first stages alone, run one experiment "
                              "per dataset", "rerankers")
        shared = {k: getattr(self, k) for k in _SharedSections.model_fields}
        self._experiments = [
            ExperimentConfig.model_construct(name=f"{self.name}-{ds.name}", dataset=ds,
                                             first_stage=fs, **shared)
            for ds, fs in cells]
        return self

    @property
    def experiments(self) -> list[ExperimentConfig]:
        return self._experiments

    def _locate(self, base_dir: Path, source_path: Path | None, raw: dict[str, Any]) -> None:
        super()._locate(base_dir, source_path, raw)
        for exp in self._experiments:
            exp._locate(base_dir, source_path, raw)

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


TOP_LEVEL_KEYS = set(ExperimentConfig.model_fields) | set(SweepConfig.model_fields)


def parse_config(raw: Any, *, base_dir: Path,
                 source_path: Path | None = None) -> ExperimentConfig | SweepConfig:
    """Validate a config mapping: one experiment (``dataset:``) or a sweep (``datasets:``).
    Relative paths in it resolve against ``base_dir``. Errors are FieldErrors (one line,
    naming the field; ``loc`` is its place in ``raw``)."""
    if not isinstance(raw, dict):
        raise FieldError(f"config: expected a mapping, got {type_name(raw)}")
    if "dataset" in raw and "datasets" in raw:
        raise FieldError("datasets: give either dataset (one experiment) or datasets "
                         "(a sweep), not both", loc=("datasets",))
    model: type[ExperimentConfig] | type[SweepConfig] = (
        SweepConfig if "datasets" in raw else ExperimentConfig)
    config = parse(model, raw, context={"base_dir": base_dir})
    config._locate(base_dir, source_path, raw)
    return config


def load_config(path: str | Path) -> ExperimentConfig | SweepConfig:
    """Read and validate a YAML config; errors name the file, the line and the field."""
    path = Path(path)
    raw, lines = read_yaml_lines(path, "config")
    try:
        return parse_config(raw, base_dir=path.resolve().parent, source_path=path)
    except FieldError as e:
        raise e.located(path, lines.line(e.loc)) from None
    except InputError as e:
        if e.path is None:
            raise InputError(str(e), path=path) from None
        raise


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of a config file (an experiment or a sweep), for editors."""
    schema = TypeAdapter(ExperimentConfig | SweepConfig).json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "rerank-eval config", **schema}


__all__ = ["AuditConfig", "CacheConfig", "DatasetConfig", "ExecutorConfig", "ExperimentConfig",
           "FirstStageConfig", "LatencyConfig", "RecommendationConfig", "RerankerConfig",
           "SampleConfig", "SweepConfig", "SweepDataset", "TOP_LEVEL_KEYS",
           "config_json_schema", "load_config", "parse_config"]
