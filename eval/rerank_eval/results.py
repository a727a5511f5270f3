"""results.json as a typed model: what ``rerank-eval run`` writes and every reader reads.

The runner builds a :class:`Results` (``runner/results.py``) and writes it; reports, compare,
gate and users' scripts read it back with :func:`read_results`, which also accepts the
schema_version 1 files written before this model existed.

- ``schema_version`` 2 adds ``status`` and ``missing``: a run rewrites results.json after its
  first stage and after each reranker, so a run that stopped half way leaves
  ``status: "partial"`` with the rerankers it did not finish in ``missing``.
- Reading is lenient: fields this version does not know are kept (``model_extra``), so a newer
  file still reads. Writing is strict: :func:`results_json` emits declared fields only, and
  refuses a model carrying an undeclared one, so this module always describes the file.
- Fields that measure the run on its machine (times, hardware, latency, throughput, executor
  statistics, reasoning quoting latency) are declared with the :data:`MEASUREMENT` marker;
  :func:`strip_measurements` drops exactly those, which leaves what the same config must
  reproduce byte for byte.
- A few parts are open JSON objects on purpose: the resolved config (its schema is the
  config's, not this file's), a backend's ``description`` and a first stage's ``params`` (each
  backend describes itself), the executor's and a hosted API's statistics (per executor and
  provider). Where readers use a key of such a part, the key is declared; the rest passes
  through unchanged.

A sweep's ``sweep.json`` (one line per finished cell, pointing at the cell's results.json) is
typed here too: :class:`Sweep`, written by ``runner/sweep.py``, read by :func:`read_sweep`.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_serializer,
    model_validator,
)

from rerank_eval.errors import InputError

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)


class Measurement:
    """Field marker: the value measures this run on this machine (time, load, hardware),
    so two runs of one config may differ in it. ``Annotated[T, MEASUREMENT]``."""

    def __repr__(self) -> str:
        return "MEASUREMENT"


class OmitNone:
    """Field marker: left out of the file when None (the field applies to some backends or
    executors only, e.g. a hosted API's usage). ``Annotated[T | None, OMIT_NONE]``."""

    def __repr__(self) -> str:
        return "OMIT_NONE"


MEASUREMENT = Measurement()
OMIT_NONE = OmitNone()


class _Model(BaseModel):
    """Base of every part of the file: unknown fields are kept on read and dropped on write
    (``OPEN`` parts write them back, in the order they came)."""

    model_config = ConfigDict(extra="allow")
    OPEN: ClassVar[bool] = False
    _order: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_order(cls, data: Any, handler: Any) -> Any:
        model = handler(data)
        if cls.OPEN and isinstance(data, Mapping) and isinstance(model, _Model):
            model._order = [str(k) for k in data]
        return model

    @model_serializer(mode="wrap")
    def _declared(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        fields = type(self).model_fields
        extra = self.model_extra or {}
        if not self.OPEN:
            for key in extra:
                data.pop(key, None)
        for name, info in fields.items():
            if OMIT_NONE in info.metadata and getattr(self, name) is None:
                data.pop(name, None)
        if self.OPEN and self._order:
            rank = {k: i for i, k in enumerate(self._order)}
            data = dict(sorted(data.items(), key=lambda kv: rank.get(kv[0], len(rank))))
        return data


class _Open(_Model):
    """A part whose keys belong to someone else (see the module docstring): undeclared keys
    are written back as they came."""

    OPEN = True


# --- hardware and dataset ------------------------------------------------------------------

class Hardware(_Model):
    """The machine a measurement ran on (``rerank_eval.hardware.hardware_fingerprint``);
    ``id`` groups runs of one setup. A Ray worker's adds ``host``."""

    id: str | None = None
    cpu_model: str | None = None
    cores: int | None = None
    cores_available: int | None = None
    threads_used: int | None = None
    ram_gb: float | None = None
    cpu_flags: list[str] = []
    gpu_model: str | None = None
    gpu_count: int | None = None
    gpu_memory_gb: float | None = None
    driver: str | None = None
    cuda: str | None = None
    os: str | None = None
    python: str | None = None
    torch: str | None = None
    transformers: str | None = None
    sentence_transformers: str | None = None
    load_avg_1m: float | None = None
    host: Annotated[str | None, OMIT_NONE] = None
    id_rule: str | None = None


class DatasetSummary(_Model):
    id: str | None = None
    queries: int | None = None
    documents: int | None = None
    qrels: int | None = None
    notes: list[str] = []


class LatencySettings(_Open):
    """``config.latency``: the per-query latency sample."""

    queries: int | None = None
    warmup: int | None = None
    seed: int | None = None
    depths: Annotated[list[int] | None, OMIT_NONE] = None


class RecommendationSettings(_Open):
    """``config.recommendation``: how the depth is recommended."""

    metric: str | None = None


class RunConfig(_Open):
    """The config as the run resolved it (``ExperimentConfig.resolved()``). Its schema is the
    config's, so it stays an open object; declared here are the keys reports read."""

    name: str | None = None
    # The dataset and first-stage sections as written (compare and gate check that both
    # sides share them, ``compare.conventions``).
    dataset: Annotated[dict[str, Any] | None, OMIT_NONE] = None
    first_stage: Annotated[dict[str, Any] | None, OMIT_NONE] = None
    depths: list[int] = []
    metrics: list[str] = []
    relevance_threshold: int | None = None
    latency: LatencySettings | None = None
    recommendation: RecommendationSettings | None = None


class Conventions(_Open):
    """One rule sentence per convention the numbers follow (ties, relevance, latency, ...).
    Reports list them all, so a new convention needs no schema change; declared are the
    ones reports quote."""

    tie_order: str | None = None
    relevance_threshold: int | None = None
    throughput: str | None = None


# --- the first stage -----------------------------------------------------------------------

class LatencyStats(_Model):
    """Per-query latency in milliseconds over a seeded sample (None: empty sample)."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None
    queries: int = 0
    pairs_per_query: Annotated[float | None, OMIT_NONE] = None  # rerank latency only


class FirstStage(_Model):
    name: str
    depth: int
    # The first stage's own description (kind, params, model, components): per backend.
    params: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    queries_evaluated: int | None = None
    queries_without_results: int | None = None
    latency_ms: Annotated[LatencyStats | None, MEASUREMENT] = None
    # recall@k for k up to the depth: the ceiling of any reranker of the top-k
    recall_curve: dict[str, float] | None = None


# --- a reranker ----------------------------------------------------------------------------

class SanityProbe(_Model):
    """One inverted probe: the relevant passage should score above the irrelevant one."""

    query: str
    relevant_score: float
    irrelevant_score: float


class Sanity(_Model):
    """Obvious (query, relevant, irrelevant) probes ordered the wrong way round."""

    probes: int
    inverted: int
    failed: bool
    # The inverted probes (expected: relevant above irrelevant; got: these scores).
    inverted_probes: list[SanityProbe] = []


class AuditTotals(_Model):
    """Relevant passages the reranker moved across the output cut ``k`` at one depth."""

    k: int
    dropped: int
    rescued: int
    net: int


class ScoreSummary(_Model):
    """min, quantiles, max and mean of every raw model score (``analysis.audit``)."""

    pairs: int = 0
    non_finite: int = 0
    min: Annotated[float | None, OMIT_NONE] = None
    p5: Annotated[float | None, OMIT_NONE] = None
    p25: Annotated[float | None, OMIT_NONE] = None
    p50: Annotated[float | None, OMIT_NONE] = None
    p75: Annotated[float | None, OMIT_NONE] = None
    p95: Annotated[float | None, OMIT_NONE] = None
    max: Annotated[float | None, OMIT_NONE] = None
    mean: Annotated[float | None, OMIT_NONE] = None


class Histogram(_Model):
    edges: list[float]
    relevant: list[int]
    other: list[int]


class ScoreDistribution(_Model):
    """Raw scores of judged-relevant vs other shortlist pairs (count 0: nothing else)."""

    count: int = 0
    relevant_count: Annotated[int | None, OMIT_NONE] = None
    min: Annotated[float | None, OMIT_NONE] = None
    max: Annotated[float | None, OMIT_NONE] = None
    mean: Annotated[float | None, OMIT_NONE] = None
    std: Annotated[float | None, OMIT_NONE] = None
    quantiles: Annotated[dict[str, float] | None, OMIT_NONE] = None
    histogram: Annotated[Histogram | None, OMIT_NONE] = None
    relevant_rule: Annotated[str | None, OMIT_NONE] = None


class WorkerRun(_Model):
    """One Ray worker's share of a scoring pass."""

    worker: int
    host: str | None = None
    threads: int | None = None
    chunks: int = 0
    pairs: int = 0
    busy_s: Annotated[float, MEASUREMENT] = 0.0
    pairs_per_s: Annotated[float | None, MEASUREMENT] = None


class ExecutorRun(_Open):
    """What the executor's scoring pass did (``Executor.run_info``): per executor, so open;
    ``local`` writes kind and threads, ``ray`` the rest."""

    kind: str | None = None
    threads: Annotated[int | None, OMIT_NONE] = None
    address: Annotated[str | None, OMIT_NONE] = None
    workers: Annotated[int | None, OMIT_NONE] = None
    chunks_scored: Annotated[int | None, OMIT_NONE] = None
    chunks_from_cache: Annotated[int | None, OMIT_NONE] = None
    pool: Annotated[str | None, OMIT_NONE] = None
    retried_chunks: Annotated[int | None, OMIT_NONE] = None
    replaced_workers: Annotated[int | None, OMIT_NONE] = None
    per_worker: Annotated[list[WorkerRun] | None, OMIT_NONE] = None


class Throughput(_Model):
    """The bulk scoring pass: pairs (and queries) the model scored over its wall time, with
    the settings that produced it. A partly cached pass has no rate (see ``note``)."""

    pairs_per_s: float | None = None
    queries_per_s: float | None = None
    pairs: int = 0
    queries: int = 0
    seconds: float | None = None
    batch_size: int | None = None
    dtype: str | None = None
    device: str | None = None
    threads: int | None = None
    pairs_from_cache: Annotated[int | None, OMIT_NONE] = None
    # Wall seconds of the pass spent waiting out failures (retries); the rates exclude them.
    retry_wait_s: Annotated[float | None, OMIT_NONE] = None
    note: Annotated[str | None, OMIT_NONE] = None


class LatencySetup(_Open):
    """How latency was measured: the ``latency`` settings (open: the config's keys), whether
    it was, and whether the machine let it be trusted (load before timing, spread of one
    probe timed repeatedly)."""

    queries: int | None = None
    warmup: int | None = None
    seed: int | None = None
    depths: Annotated[list[int] | None, OMIT_NONE] = None
    measured: bool = False
    score_cache: str | None = None
    skipped: Annotated[str | None, OMIT_NONE] = None
    seconds: Annotated[float | None, MEASUREMENT, OMIT_NONE] = None  # sampling took
    load_avg_1m: Annotated[float | None, MEASUREMENT, OMIT_NONE] = None  # before timing
    busy_cores_before: Annotated[float | None, MEASUREMENT, OMIT_NONE] = None
    cores: Annotated[int | None, MEASUREMENT, OMIT_NONE] = None
    probe_spread: Annotated[float | None, MEASUREMENT, OMIT_NONE] = None  # (max-min)/median
    reliable: Annotated[bool | None, MEASUREMENT, OMIT_NONE] = None
    unreliable_reasons: Annotated[list[str] | None, MEASUREMENT, OMIT_NONE] = None


class Recommendation(_Model):
    """The recommended depth and why (``analysis.recommend``)."""

    depth: int | None
    metric: str
    tolerance: float
    quality: float | None = None
    best_depth: int
    best_quality: float
    latency_budget_ms: float | None = None
    latency_stat: str = "p95"
    latency_ms: Annotated[float | None, MEASUREMENT] = None
    reasoning: Annotated[list[str], MEASUREMENT] = []  # quotes measured latency
    # "rerank", "don't rerank" (depth 0: the first stage alone) or "none" (no advice).
    action: Annotated[str | None, OMIT_NONE] = None
    max_length: Annotated[int | None, OMIT_NONE] = None  # with max_lengths
    best_max_length: Annotated[int | None, OMIT_NONE] = None
    first_stage_quality: Annotated[float | None, OMIT_NONE] = None
    # Chosen quality minus the first stage's (for "don't rerank": the best depth's deficit).
    vs_first_stage: Annotated[float | None, OMIT_NONE] = None
    p_value: Annotated[float | None, OMIT_NONE] = None
    test: Annotated[str | None, OMIT_NONE] = None


class VsFirstStage(_Model):
    """A depth's quality against the first stage alone on the same queries (paired test)."""

    metric: str
    difference: float  # reranked mean - first-stage mean
    p_value: float
    test: str
    queries: int


class ByMaxLength(_Model):
    """One context length of a reranker with ``max_lengths``: the shortlist scored again."""

    metrics: dict[str, dict[str, float]] = {}  # depth -> metric -> mean
    pairs_scored: int = 0
    pairs_from_cache: int = 0
    pairs_truncated: int = 0
    documents_scored: Annotated[int | None, OMIT_NONE] = None
    vs_first_stage: dict[str, VsFirstStage] = {}
    throughput: Annotated[Throughput | None, MEASUREMENT] = None
    latency_ms: Annotated[dict[str, LatencyStats], MEASUREMENT] = {}


class LongDocs(_Model):
    """How documents longer than a window were scored (``long_docs``)."""

    strategy: str
    passage_tokens: int
    stride: int
    documents: int = 0  # (query, document) pairs of the shortlist
    windows: int = 0  # (query, window) pairs they became
    documents_split: int = 0  # documents with more than one window


class HostedUsage(_Open):
    """A hosted API's requests and billed units. Open: the billed keys are the provider's
    (``search_units``, ``total_tokens``; a listwise chat endpoint's ``input_tokens`` and
    ``output_tokens``)."""

    requests: int = 0
    attempts: int = 0
    retries: int = 0
    documents: int = 0
    search_units: Annotated[float | None, OMIT_NONE] = None
    total_tokens: Annotated[float | None, OMIT_NONE] = None
    requests_without_usage: int = 0
    queries_split: int = 0
    retry_reasons: dict[str, int] = {}


class RequestLatencySummary(_Model):
    """Per-request wall time of a hosted API's scoring pass (ms)."""

    requests: int = 0
    p50: Annotated[float | None, OMIT_NONE] = None
    p95: Annotated[float | None, OMIT_NONE] = None
    mean: Annotated[float | None, OMIT_NONE] = None
    max: Annotated[float | None, OMIT_NONE] = None


DepthKey = str  # a reranking depth as a JSON key: "10"


class ListwiseDepth(_Model):
    """One depth's own sliding-window pass: windows ranked, requests sent."""

    windows: int = 0
    requests: int = 0
    from_cache: int = 0
    windows_per_query: int = 0  # one pass over the top-d without the cache
    queries: int = 0


class WindowLatency(_Model):
    """Wall time of the windows sent to the model (ms); cached windows are not timed."""

    windows: int = 0
    p50: Annotated[float | None, OMIT_NONE] = None
    p95: Annotated[float | None, OMIT_NONE] = None
    mean: Annotated[float | None, OMIT_NONE] = None
    max: Annotated[float | None, OMIT_NONE] = None


class ListwiseInfo(_Model):
    """A listwise reranker's windows: how many were ranked, how many sent, and how often its
    answer needed repair. The repair counts are over ``answers``, the distinct windows (a
    window whose exact content recurs, at another depth or from the cache, is counted once);
    one answer can count in several columns; ``ok`` is a clean ``[i] > [j] > ...`` naming every
    passage once; ``kept_order``: no identifier at all, the window kept its input order."""

    backend: str | None = None  # "chat" (an endpoint) or "local" (a causal LM here)
    window: int | None = None
    stride: int | None = None
    passes: int | None = None
    shuffle_input: int | None = None
    windows: int = 0
    requests: int = 0
    from_cache: int = 0
    answers: int = 0
    ok: int = 0
    wrong_format: int = 0
    repetition: int = 0
    out_of_range: int = 0
    missing: int = 0
    kept_order: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    window_latency_ms: Annotated[WindowLatency | None, MEASUREMENT] = None
    per_depth: dict[str, ListwiseDepth] = {}
    scores: str | None = None  # how ranks became scores


class RerankerEntry(_Model):
    """One reranker: quality per depth, what it scored, what it cost, what it recommends."""

    name: str
    kind: str | None = None
    model: str | None = None
    # What was applied to the model's logit to give the scores (identity, sigmoid, unknown).
    score_transform: Annotated[str | None, OMIT_NONE] = None
    metrics: dict[DepthKey, dict[str, float]] = {}  # depth -> metric -> mean
    pairs_scored: int = 0  # model calls (cache hits and latency probes excluded)
    pairs_from_cache: int = 0
    pairs_truncated: int = 0
    # Queries cut before scoring (a cross-encoder cuts those over half its window); absent
    # where the backend cannot tell (hosted APIs truncate on the provider's side).
    queries_truncated: Annotated[int | None, OMIT_NONE] = None
    sanity: Annotated[Sanity | None, OMIT_NONE] = None  # with sanity_check: true
    # The backend's own description (model path, dtype, batch size, provider, ...).
    description: dict[str, Any] = {}
    scoring_s: Annotated[float | None, MEASUREMENT] = None
    first_stage_recall_at_depth: dict[DepthKey, float] = {}
    executor: Annotated[ExecutorRun | None, MEASUREMENT] = None
    audit: dict[DepthKey, AuditTotals] = {}
    score_summary: ScoreSummary | None = None
    throughput: Annotated[Throughput | None, MEASUREMENT] = None
    # Where latency was measured (this process, a Ray worker) and on which hardware, when
    # that is not the run's own; several setups: one latency per hardware id.
    latency_where: Annotated[str | None, MEASUREMENT, OMIT_NONE] = None
    latency_hardware: Annotated[Hardware | None, MEASUREMENT, OMIT_NONE] = None
    latency_ms_by_hardware: Annotated[dict[str, dict[DepthKey, LatencyStats]] | None,
                                      MEASUREMENT, OMIT_NONE] = None
    latency_ms: Annotated[dict[DepthKey, LatencyStats], MEASUREMENT] = {}
    latency_setup: LatencySetup | None = None
    score_distribution: ScoreDistribution | None = None
    output_cut: dict[DepthKey, dict[str, float]] = {}  # depth -> metric@k -> mean
    recommended_depth: int | None = None
    recommendation: Recommendation | None = None
    recommended_max_length: Annotated[int | None, OMIT_NONE] = None
    # Per depth: the recommendation metric against the first stage alone (paired test).
    vs_first_stage: dict[DepthKey, VsFirstStage] = {}
    # With long_docs windows: pairs_* count (query, window) pairs; this the documents.
    documents_scored: Annotated[int | None, OMIT_NONE] = None
    long_docs: Annotated[LongDocs | None, OMIT_NONE] = None
    # With max_lengths: the shortlist scored at each length (key: the length).
    by_max_length: Annotated[dict[str, ByMaxLength] | None, OMIT_NONE] = None
    cache_fingerprint: Annotated[str | None, OMIT_NONE] = None  # with the score cache on
    # Hosted APIs only.
    usage: Annotated[HostedUsage | None, OMIT_NONE] = None
    price: Annotated[dict[str, float] | None, OMIT_NONE] = None
    cost_usd: Annotated[float | None, OMIT_NONE] = None
    request_latency_ms: Annotated[list[float] | None, MEASUREMENT, OMIT_NONE] = None
    request_latency_summary_ms: Annotated[RequestLatencySummary | None, MEASUREMENT,
                                          OMIT_NONE] = None
    # Listwise rerankers only (their usage, price and cost_usd use the fields above).
    listwise: Annotated[ListwiseInfo | None, OMIT_NONE] = None

    def depths(self) -> list[int]:
        return sorted(int(d) for d in self.metrics)


class SkippedReranker(_Model):
    """An ``optional: true`` reranker that did not run, and why (e.g. its hub model is not
    cached and the hub cannot be reached)."""

    name: str
    kind: str | None = None
    model: str | None = None
    reason: str


# --- the file ------------------------------------------------------------------------------

class MetricDelta(_Model):
    """A quality metric of two rerankers at one depth: means, their difference (b - a) and
    the paired test's p-value over the queries both were evaluated on."""

    metric: str
    depth: int
    mean_a: float
    mean_b: float
    delta: float
    queries: int
    test: str | None = None
    p_value: float | None = None


class PairAgreement(_Model):
    """How closely reranker ``b`` reproduces reranker ``a`` (both serving one checkpoint:
    torch, ONNX, OpenVINO, a server). Computed by ``analysis/agreement.py``; a run writes one
    per pair of rerankers declaring the same ``model``, ``rerank-eval agree`` any pair."""

    a: str
    b: str
    transform_a: str | None
    transform_b: str | None
    scale: str | None  # the scale |Δscore| is measured on; None: not comparable
    pairs: int  # (query, doc) pairs both scored
    pairs_only_one: int  # scored by one side only (left out)
    queries: int
    max_abs_delta: float | None
    mean_abs_delta: float | None
    k: int
    tau_mean: float
    tau_min: float
    tau_min_query: str | None
    topk_changed: float  # share of queries whose top-k set differs
    topk_changed_queries: list[str] = []
    tau_per_query: dict[str, float] = {}
    metrics: list[MetricDelta] = []

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Results(_Model):
    """One results.json."""

    schema_version: Literal[2] = 2  # SCHEMA_VERSION
    # "partial": the run stopped (or is still running) before every reranker finished;
    # ``missing`` names those without results.
    status: Literal["complete", "partial"] = "complete"
    missing: list[str] = []
    rerank_eval_version: str | None = None
    name: str | None = None
    hardware: Annotated[Hardware | None, MEASUREMENT] = None
    config: RunConfig = Field(default_factory=RunConfig)
    dataset: DatasetSummary = Field(default_factory=DatasetSummary)
    first_stage: FirstStage
    rerankers: list[RerankerEntry] = []
    # Optional rerankers that were skipped (not counted in ``missing``).
    skipped: list[SkippedReranker] = []
    # Rerankers declaring the same ``model`` (one checkpoint, several backends): how closely
    # each reproduces the first of its group (``rerank-eval agree``'s figures).
    agreement: list[PairAgreement] = []
    conventions: Conventions = Field(default_factory=Conventions)
    timings_s: Annotated[dict[str, float], MEASUREMENT] = {}
    runs_dir: str | None = None
    # Where this was read from (set by read_results); never written.
    source: str | None = Field(default=None, exclude=True)

    @property
    def hardware_id(self) -> str:
        return (self.hardware.id if self.hardware else None) or "unknown"

    def reranker_names(self) -> list[str]:
        return [r.name for r in self.rerankers]

    def reranker(self, name: str) -> RerankerEntry:
        """The entry named ``name`` (KeyError when there is none)."""
        for entry in self.rerankers:
            if entry.name == name:
                return entry
        raise KeyError(name)


# --- sweep.json ----------------------------------------------------------------------------

SWEEP_SCHEMA_VERSION = 1


class SweepFirstStage(_Model):
    """A sweep cell's first stage: its name, depth and mean metrics."""

    name: str
    depth: int
    metrics: dict[str, float] = {}


class SweepCell(_Model):
    """One (dataset, reranker) cell of a sweep: where its results.json is, its metrics per
    depth and what it cost (the rest is in that results.json)."""

    dataset: str  # the dataset's name in the sweep (its folder)
    dataset_id: str | None = None
    reranker: str
    kind: str | None = None
    model: str | None = None
    results: str  # the cell's results.json, relative to the sweep's folder
    first_stage: SweepFirstStage
    metrics: dict[DepthKey, dict[str, float]] = {}  # depth -> metric -> mean
    pairs_scored: int = 0
    pairs_from_cache: int = 0
    scoring_s: Annotated[float | None, MEASUREMENT] = None
    recommended_depth: int | None = None


class Sweep(_Model):
    """One sweep.json: the sweep's hardware and resolved config, and a line per finished
    cell in run order (``rerank_eval.runner.sweep`` rewrites it after every cell)."""

    schema_version: Literal[1] = 1  # SWEEP_SCHEMA_VERSION
    name: str
    hardware: Annotated[Hardware | None, MEASUREMENT] = None
    # The sweep as resolved (``SweepConfig.resolved()``): its schema is the config's.
    config: dict[str, Any] = {}
    cells: list[SweepCell] = []


def sweep_json(sweep: Sweep) -> str:
    """The text of sweep.json for ``sweep`` (undeclared fields refused, as in results.json)."""
    stray = undeclared_fields(sweep)
    if stray:
        raise ValueError(f"sweep.json field {stray[0]} is not declared in rerank_eval.results")
    return json.dumps(sweep.model_dump(mode="json"), indent=2) + "\n"


def read_sweep(path: str | Path) -> Sweep:
    """Read a sweep.json (or the sweep folder holding one); a bad file is one InputError line
    naming it and the field."""
    path = Path(path)
    if path.is_dir():
        path = path / "sweep.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("sweep file not found", path=path) from None
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON ({e.msg})", path=path, line=e.lineno) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the file ({e})", path=path) from None
    if not isinstance(data, Mapping) or data.get("schema_version") != SWEEP_SCHEMA_VERSION:
        raise InputError(f"not a sweep.json this rerank-eval reads (schema_version "
                         f"{SWEEP_SCHEMA_VERSION})", path=path)
    try:
        return Sweep.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise InputError(f"{_where(first['loc'])}: {first['msg']}", path=path) from None


# --- reading -------------------------------------------------------------------------------

def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_results(data: Any, *, source: str | Path | None = None) -> Results:
    """A results.json document (already parsed) as :class:`Results`: schema_version 1 is
    migrated (it had no status: complete). Problems are one InputError line naming
    ``source`` and the field."""
    if not isinstance(data, Mapping) or not {"schema_version", "first_stage",
                                              "rerankers"} <= set(data):
        raise InputError("not a rerank-eval results.json (no schema_version/first_stage/"
                         "rerankers)", path=source)
    version = data["schema_version"]
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise InputError(f"schema_version {version!r} is not one this rerank-eval reads "
                         f"({', '.join(map(str, READABLE_VERSIONS))}); a newer rerank-eval "
                         "wrote it?", path=source)
    if version == 1:
        data = {**data, "schema_version": 2, "status": "complete", "missing": []}
    try:
        results = Results.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InputError(f"{_where(first['loc'])}: {first['msg']}{more}", path=source) from None
    results.source = None if source is None else str(source)
    return results


def read_results(path: str | Path) -> Results:
    """Read a results.json (or the folder holding one) written by ``rerank-eval run``, any
    schema version this package knows; a bad file is one InputError line naming it."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise InputError("results file not found", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON ({e.msg})", path=path, line=e.lineno) from None
    except UnicodeDecodeError:
        raise InputError("not valid UTF-8", path=path) from None
    except OSError as e:
        raise InputError(f"cannot read the file ({e.strerror or e})", path=path) from None
    return parse_results(data, source=path)


# --- writing -------------------------------------------------------------------------------

def undeclared_fields(model: BaseModel, where: str = "") -> list[str]:
    """Paths of fields a (closed) part carries that this module does not declare."""
    found: list[str] = []
    if isinstance(model, _Model) and not model.OPEN:
        found += [f"{where}.{k}" if where else k for k in (model.model_extra or {})]
    for name in type(model).model_fields:
        found += _undeclared_in(getattr(model, name), f"{where}.{name}" if where else name)
    return found


def _undeclared_in(value: Any, where: str) -> list[str]:
    if isinstance(value, BaseModel):
        return undeclared_fields(value, where)
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _undeclared_in(v, f"{where}[{i}]")]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _undeclared_in(v, f"{where}.{k}")]
    return []


def results_json(results: Results) -> str:
    """The text of results.json for ``results``. A field this module does not declare is a
    programming error (declare it here first), not something to write silently."""
    stray = undeclared_fields(results)
    if stray:
        raise ValueError(f"results.json field {stray[0]} is not declared in "
                         "rerank_eval.results (declare it, marking measurements)")
    return json.dumps(results.model_dump(mode="json"), indent=2) + "\n"


# --- measurements --------------------------------------------------------------------------

def _is_measurement(info: Any) -> bool:
    return any(isinstance(m, Measurement) for m in info.metadata)


def _unwrap(tp: Any) -> Any:
    """``X`` from ``X | None`` and ``Annotated[X, ...]``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _strip(value: Any, tp: Any) -> Any:
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(value, Mapping):
        fields = tp.model_fields
        out = {}
        for key, item in value.items():
            info = fields.get(key)
            if info is None or info.exclude:
                out[key] = item  # undeclared: not known to be a measurement
            elif not _is_measurement(info):
                out[key] = _strip(item, info.annotation)
        return out
    if origin is list and isinstance(value, list):
        (item_type,) = typing.get_args(tp)
        return [_strip(v, item_type) for v in value]
    if origin is dict and isinstance(value, Mapping):
        _, item_type = typing.get_args(tp)
        return {k: _strip(v, item_type) for k, v in value.items()}
    return value


def strip_measurements(results: Results | Mapping[str, Any],
                       model: type[BaseModel] = Results) -> dict[str, Any]:
    """``results`` (a results.json document or a :class:`Results`) without the fields
    ``model`` declares as measurements (:data:`MEASUREMENT`), at any depth: what two runs of
    one config must agree on."""
    data = results.model_dump(mode="json") if isinstance(results, BaseModel) else results
    return _strip(data, model)


def measurement_fields(model: type[BaseModel] = Results, where: str = "") -> list[str]:
    """Every measurement field of ``model``, as paths (``rerankers[].latency_ms``)."""
    found: list[str] = []
    for name, info in model.model_fields.items():
        path = f"{where}.{name}" if where else name
        if _is_measurement(info):
            found.append(path)
            continue
        found += _measurements_below(info.annotation, path)
    return found


def _measurements_below(tp: Any, path: str) -> list[str]:
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return measurement_fields(tp, path)
    if origin is list:
        return _measurements_below(typing.get_args(tp)[0], path + "[]")
    if origin is dict:
        return _measurements_below(typing.get_args(tp)[1], path + ".*")
    return []
