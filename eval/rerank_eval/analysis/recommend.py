"""The depth recommendation: rerank as shallow as quality allows, within a latency budget.

Rule: the smallest depth whose quality is within ``tolerance`` of the best depth's quality
(absolute difference in the metric). With a latency budget, only depths whose latency
statistic (default p95 rerank latency per query) is within the budget qualify; if none of the
near-best depths fits, the best-quality depth that fits is recommended instead, and if no depth
fits there is no recommendation. The reasoning is kept as sentences for the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from rerank_eval.errors import InputError
from rerank_eval.metrics import parse_metric
from rerank_eval.params import (
    NonNegativeNumber,
    Params,
    PositiveInt,
    Str,
    as_field_error,
    check_before,
    field_error,
    is_non_empty_list,
)

EPS = 1e-12
RECOMMENDATION_RULE = ("smallest depth whose quality is within the tolerance (absolute) of the "
                       "best depth's; with latency_budget_ms, only depths whose rerank latency "
                       "statistic fits the budget")


class RecommendationConfig(Params):
    """How the recommended rerank depth is chosen, and which output cuts are reported."""

    metric: Str = "ndcg@10"
    """The quality metric (one of ``metrics``; default ndcg@10 if there, else the first)."""
    tolerance: NonNegativeNumber = 0.005
    """Largest absolute quality loss against the best depth."""
    latency_budget_ms: NonNegativeNumber | None = None
    latency_stat: Literal["p50", "p95", "p99", "mean"] = "p95"
    output_k: Annotated[list[PositiveInt], Field(min_length=1), check_before(
        is_non_empty_list, "expected a non-empty list of integers, e.g. [3, 5, 10]")] = [3, 5, 10]
    """Output cuts (what a user or an LLM sees) reported per depth."""
    output_measures: Annotated[list[Str], Field(min_length=1), check_before(
        is_non_empty_list, "expected a list such as [ndcg, recall]")] = ["ndcg", "recall"]

    @field_validator("metric", mode="after")
    @classmethod
    def _canonical_metric(cls, metric: str) -> str:
        return as_field_error(lambda where: parse_metric(metric, where)).name

    @field_validator("output_k", mode="after")
    @classmethod
    def _sorted(cls, ks: list[int]) -> list[int]:
        return sorted(set(ks))

    @field_validator("output_measures", mode="after")
    @classmethod
    def _measures(cls, measures: list[str]) -> list[str]:
        out = []
        for i, m in enumerate(measures):
            try:
                out.append(parse_metric(f"{m}@1").measure)
            except InputError:
                raise field_error(f"unknown measure {m!r} (use ndcg, mrr, recall, map, p)",
                                  i) from None
        return list(dict.fromkeys(out))


@dataclass
class Recommendation:
    depth: int | None
    metric: str
    tolerance: float
    quality: float | None
    best_depth: int
    best_quality: float
    latency_budget_ms: float | None
    latency_stat: str
    latency_ms: float | None
    reasoning: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt_lat(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.1f} ms"


def recommend_depth(
    quality: Mapping[int, float],
    latency: Mapping[str, Mapping[str, Any]] | None,
    *,
    metric: str,
    tolerance: float,
    latency_budget_ms: float | None = None,
    latency_stat: str = "p95",
) -> Recommendation:
    """Pick a rerank depth from the quality curve ``{depth: metric value}`` and latency."""
    depths = sorted(quality)
    best_q = max(quality[d] for d in depths)
    best_d = min(d for d in depths if quality[d] >= best_q - EPS)

    def lat(d: int) -> float | None:
        entry = (latency or {}).get(str(d)) or {}
        return entry.get(latency_stat)

    within = [d for d in depths if quality[d] >= best_q - tolerance - EPS]
    reasons = [
        f"best {metric} = {best_q:.4f} at depth {best_d}; within {tolerance:g} of it: depths "
        + ", ".join(str(d) for d in within) + "."
    ]
    chosen: int | None = within[0]
    if latency_budget_ms is not None:
        measured = all(lat(d) is not None for d in depths)
        if not measured:
            reasons.append(f"latency budget {latency_budget_ms:g} ms not applied: latency "
                           "was not measured.")
        else:
            fits = [d for d in depths if lat(d) <= latency_budget_ms]  # type: ignore[operator]
            near = [d for d in within if d in fits]
            if near:
                chosen = near[0]
                reasons.append(f"within the {latency_budget_ms:g} ms budget ({latency_stat}): "
                               "depths " + ", ".join(str(d) for d in fits) + ".")
            elif fits:
                chosen = max(fits, key=lambda d: (quality[d], -d))
                reasons.append(f"no near-best depth fits the {latency_budget_ms:g} ms budget "
                               f"({latency_stat}); best quality that fits is depth {chosen}.")
            else:
                chosen = None
                reasons.append(f"no depth fits the {latency_budget_ms:g} ms budget: depth "
                               f"{depths[0]} takes {_fmt_lat(lat(depths[0]))} ({latency_stat}).")
    if chosen is not None:
        reasons.append(f"recommended depth {chosen}: {metric} = {quality[chosen]:.4f} "
                       f"({quality[chosen] - best_q:+.4f} vs best), {latency_stat} rerank "
                       f"latency {_fmt_lat(lat(chosen))} per query.")
    return Recommendation(
        depth=chosen, metric=metric, tolerance=tolerance,
        quality=None if chosen is None else quality[chosen], best_depth=best_d,
        best_quality=best_q, latency_budget_ms=latency_budget_ms, latency_stat=latency_stat,
        latency_ms=None if chosen is None else lat(chosen), reasoning=reasons,
    )
