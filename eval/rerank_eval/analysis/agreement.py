"""Agreement between two rerankers that should score alike (one checkpoint served by different
backends: torch, ONNX, OpenVINO, Infinity, TEI, vLLM), from their saved per-pair scores.

Scores are compared on one scale: each reranker declares the transform between the model's
logit and its scores (``identity`` or ``sigmoid``); when the two differ, the identity side is
passed through the sigmoid so both are probabilities. Rankings (Kendall tau, top-k sets) do not
depend on the scale; |Δscore| does, and is not computed when a side's transform is unknown.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy.stats import kendalltau

from rerank_eval.results import MetricDelta, PairAgreement
from rerank_eval.runs import order_by_score

__all__ = ["MetricDelta", "PairAgreement", "agreement_failures", "common_scale",
           "metric_delta", "score_agreement", "to_scale"]

TRANSFORMS = ("identity", "sigmoid")

Scores = Mapping[str, Mapping[str, float]]  # query id -> doc id -> score
PValue = Callable[[Sequence[float], Sequence[float]], float]


def common_scale(transform_a: str | None, transform_b: str | None) -> str | None:
    """The scale both sides can be mapped to, or None when a transform is unknown."""
    if transform_a not in TRANSFORMS or transform_b not in TRANSFORMS:
        return None
    return transform_a if transform_a == transform_b else "sigmoid"


def to_scale(values: np.ndarray, transform: str, scale: str) -> np.ndarray:
    """``values`` (scores after ``transform``) on ``scale``."""
    if transform == scale:
        return values
    if transform == "identity" and scale == "sigmoid":
        return 1.0 / (1.0 + np.exp(-values))
    raise ValueError(f"cannot map {transform} scores to the {scale} scale")


def _query_tau(a: np.ndarray, b: np.ndarray, order_a: list[str], order_b: list[str]) -> float:
    """Kendall tau-b of one query; constant scores on a side (tau undefined) count as full
    agreement when both sides order the documents the same way, else as none."""
    if len(a) < 2:
        return 1.0
    tau = kendalltau(a, b).statistic
    if tau is None or not math.isfinite(tau):
        return 1.0 if order_a == order_b else 0.0
    return float(tau)


def score_agreement(name_a: str, scores_a: Scores, transform_a: str | None,
                    name_b: str, scores_b: Scores, transform_b: str | None, *,
                    k: int = 10) -> PairAgreement:
    """Per-pair and per-query agreement of ``b`` with ``a`` on the pairs both scored.

    Example:
        >>> a = {"q": {"d1": 2.0, "d2": 0.0}}
        >>> b = {"q": {"d1": 0.88, "d2": 0.5}}
        >>> score_agreement("torch", a, "identity", "vllm", b, "sigmoid").tau_min
        1.0
    """
    scale = common_scale(transform_a, transform_b)
    deltas: list[np.ndarray] = []
    taus: dict[str, float] = {}
    changed: list[str] = []
    pairs = only_one = 0
    for q in sorted(set(scores_a) | set(scores_b)):
        qa, qb = scores_a.get(q, {}), scores_b.get(q, {})
        docs = sorted(set(qa) & set(qb))
        only_one += len(set(qa) ^ set(qb))
        if not docs:
            continue
        pairs += len(docs)
        va = np.array([qa[d] for d in docs], dtype=np.float64)
        vb = np.array([qb[d] for d in docs], dtype=np.float64)
        if scale is not None and transform_a is not None and transform_b is not None:
            deltas.append(np.abs(to_scale(va, transform_a, scale)
                                 - to_scale(vb, transform_b, scale)))
        order_a = order_by_score(dict(zip(docs, va)))
        order_b = order_by_score(dict(zip(docs, vb)))
        taus[q] = _query_tau(va, vb, order_a, order_b)
        if set(order_a[:k]) != set(order_b[:k]):
            changed.append(q)
    all_deltas = np.concatenate(deltas) if deltas else np.array([])
    min_query = min(taus, key=lambda q: (taus[q], q)) if taus else None
    return PairAgreement(
        a=name_a, b=name_b, transform_a=transform_a, transform_b=transform_b, scale=scale,
        pairs=pairs, pairs_only_one=only_one, queries=len(taus),
        max_abs_delta=float(all_deltas.max()) if all_deltas.size else None,
        mean_abs_delta=float(all_deltas.mean()) if all_deltas.size else None,
        k=k, tau_mean=float(np.mean(list(taus.values()))) if taus else math.nan,
        tau_min=taus[min_query] if min_query is not None else math.nan,
        tau_min_query=min_query,
        topk_changed=len(changed) / len(taus) if taus else 0.0,
        topk_changed_queries=changed, tau_per_query=taus)


def metric_delta(metric: str, depth: int, per_query_a: Mapping[str, float],
                 per_query_b: Mapping[str, float], *, test: str | None = None,
                 p_value: PValue | None = None) -> MetricDelta:
    """Mean ``metric`` of both sides over their common queries, b - a, and ``p_value``
    (the caller's paired test, named ``test``) on the per-query values."""
    queries = sorted(set(per_query_a) & set(per_query_b))
    a = [per_query_a[q] for q in queries]
    b = [per_query_b[q] for q in queries]
    mean_a = float(np.mean(a)) if a else math.nan
    mean_b = float(np.mean(b)) if b else math.nan
    p = p_value(a, b) if p_value is not None and queries else None
    return MetricDelta(metric=metric, depth=depth, mean_a=mean_a, mean_b=mean_b,
                       delta=mean_b - mean_a, queries=len(queries), test=test,
                       p_value=None if p is None else float(p))


def agreement_failures(agreement: PairAgreement, *, min_tau: float | None = None,
                       max_metric_delta: float | None = None) -> list[str]:
    """Why ``agreement`` falls below the thresholds (empty: it passes). ``min_tau`` applies
    to every query's Kendall tau, ``max_metric_delta`` to each |Δmetric|."""
    failures: list[str] = []
    pair = f"{agreement.b} vs {agreement.a}"
    if min_tau is not None and not agreement.tau_min >= min_tau:
        failures.append(f"{pair}: Kendall tau {agreement.tau_min:.6f} on query "
                        f"{agreement.tau_min_query} is below {min_tau:g}")
    if max_metric_delta is not None:
        for m in agreement.metrics:
            if not abs(m.delta) <= max_metric_delta:
                failures.append(f"{pair}: |Δ{m.metric}| at depth {m.depth} is "
                                f"{abs(m.delta):.6f}, above {max_metric_delta:g}")
    return failures
