"""The depth recommendation: rerank as shallow as quality allows, within a latency budget.

Rule: the smallest depth whose quality is within ``tolerance`` of the best depth's quality
(absolute difference in the metric). With a latency budget, only depths whose latency
statistic (default p95 rerank latency per query) is within the budget qualify; if none of the
near-best depths fits, the best-quality depth that fits is recommended instead, and if no depth
fits there is no recommendation. The reasoning is kept as sentences for the report.

Depth 0, the first stage alone, is a candidate like any depth (at zero rerank latency): when no
depth beats it by more than the tolerance, the advice is "don't rerank", with the best depth's
deficit and the paired test's p-value (computed by the runner, which may call ``compare``).
With ``max_lengths`` the options are (depth, max_length) pairs, ordered by tokens scored per
query. A reranker that fails its sanity probes gets no recommendation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
                       "best depth's, depth 0 (the first stage alone: don't rerank) included; "
                       "with max_lengths, (depth, max_length) jointly, cheapest first (depth x "
                       "max_length); with latency_budget_ms, only options whose rerank latency "
                       "statistic fits the budget; none for a reranker failing its sanity "
                       "probes")


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


@dataclass(frozen=True)
class Option:
    """One way to run a reranker: rerank the top ``depth`` (0: don't rerank, the first stage
    alone) at context ``max_length`` (None: the reranker's one setting)."""

    depth: int
    max_length: int | None = None

    @property
    def cost(self) -> int:
        """Compute proxy used to order near-best options: tokens scored per query."""
        return self.depth * (self.max_length or 1)

    def label(self) -> str:
        if self.depth == 0:
            return "depth 0 (first stage alone)"
        return f"depth {self.depth}" + ("" if self.max_length is None
                                        else f" at max_length {self.max_length}")


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
    # "rerank", "don't rerank" (depth 0: the first stage alone is as good) or "none".
    action: str = "rerank"
    max_length: int | None = None
    best_max_length: int | None = None
    first_stage_quality: float | None = None
    # The chosen option's quality minus the first stage's; for "don't rerank", the best
    # reranked option's (its deficit), with the paired test's p-value of that difference.
    vs_first_stage: float | None = None
    p_value: float | None = None
    test: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt_lat(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.1f} ms"


def _fmt_p(p: float | None, test: str | None) -> str:
    return "" if p is None else f", {test or 'paired test'} p={p:.3g}"


def recommend_depth(
    quality: Mapping[int, float],
    latency: Mapping[str, Mapping[str, Any]] | None,
    *,
    metric: str,
    tolerance: float,
    latency_budget_ms: float | None = None,
    latency_stat: str = "p95",
    first_stage_quality: float | None = None,
    p_values: Mapping[int, float] | None = None,
    test: str | None = None,
    withheld: str | None = None,
) -> Recommendation:
    """Pick a rerank depth from the quality curve ``{depth: metric value}`` and latency.

    Args:
        first_stage_quality: the first stage's value of ``metric``; given, depth 0 (don't
            rerank) is a candidate like any depth, at zero rerank latency.
        p_values: per depth, the paired test's p-value against the first stage.
        withheld: a reason to make no recommendation at all (e.g. failed sanity probes).
    """
    return recommend(
        {Option(d): q for d, q in quality.items()},
        {} if latency is None else {Option(int(d)): entry for d, entry in latency.items()},
        metric=metric, tolerance=tolerance, latency_budget_ms=latency_budget_ms,
        latency_stat=latency_stat, first_stage_quality=first_stage_quality,
        p_values={Option(d): p for d, p in (p_values or {}).items()}, test=test,
        withheld=withheld, latency_measured=latency is not None)


def recommend(
    quality: Mapping[Option, float],
    latency: Mapping[Option, Mapping[str, Any]],
    *,
    metric: str,
    tolerance: float,
    latency_budget_ms: float | None = None,
    latency_stat: str = "p95",
    first_stage_quality: float | None = None,
    p_values: Mapping[Option, float] | None = None,
    test: str | None = None,
    withheld: str | None = None,
    latency_measured: bool = True,
) -> Recommendation:
    """Pick (depth, max_length) jointly: the cheapest option (depth x max_length tokens per
    query; with one max_length, the smallest depth) within ``tolerance`` of the best option's
    quality, among those whose latency fits the budget. Depth 0 (the first stage alone) is an
    option when ``first_stage_quality`` is given."""
    p_values = p_values or {}
    c = _candidates(quality, first_stage_quality, tolerance)
    lat = _latency_of(latency, latency_stat)
    reasons = _opening_reasons(c, metric=metric, tolerance=tolerance,
                               first_stage_quality=first_stage_quality, p_values=p_values,
                               test=test)
    chosen, budget_reason = _apply_budget(c, lat, latency_budget_ms=latency_budget_ms,
                                          latency_stat=latency_stat,
                                          latency_measured=latency_measured)
    if budget_reason is not None:
        reasons.append(budget_reason)
    action = _action(chosen)
    if withheld is not None:
        chosen, action = None, "none"
        reasons.append(f"no recommendation: {withheld}.")
    vs_fs, p = _vs_first_stage(c, chosen, first_stage_quality, p_values)
    if chosen is not None:
        reasons.append(_verdict(c, chosen, lat, metric=metric,
                                latency_budget_ms=latency_budget_ms, latency_stat=latency_stat,
                                vs_fs=vs_fs, p=p, test=test))
    return Recommendation(
        depth=None if chosen is None else chosen.depth, metric=metric, tolerance=tolerance,
        quality=None if chosen is None else c.options[chosen], best_depth=c.best.depth,
        best_quality=c.best_q, latency_budget_ms=latency_budget_ms, latency_stat=latency_stat,
        latency_ms=None if chosen is None else lat(chosen), reasoning=reasons, action=action,
        max_length=None if chosen is None else chosen.max_length,
        best_max_length=c.best.max_length, first_stage_quality=first_stage_quality,
        vs_first_stage=vs_fs, p_value=p, test=test if p is not None else None,
    )


@dataclass(frozen=True)
class _Candidates:
    """The options with their quality, cheapest first, and the landmarks the rule reads."""

    options: dict[Option, float]
    order: list[Option]
    best_q: float
    best: Option
    best_rr: Option | None
    within: list[Option]


def _candidates(quality: Mapping[Option, float], first_stage_quality: float | None,
                tolerance: float) -> _Candidates:
    """Every option, depth 0 included when the first stage's quality is known, ordered by cost
    (the rule prefers the cheapest); the best (cheapest at top quality), the best reranked
    option (what "don't rerank" gives up) and the tolerance band (the near-best options)."""
    options = dict(quality)
    if first_stage_quality is not None:
        options[Option(0)] = first_stage_quality
    order = sorted(options, key=lambda o: (o.cost, o.depth, o.max_length or 0))
    best_q = max(options.values())
    best = next(o for o in order if options[o] >= best_q - EPS)
    reranked = [o for o in order if o.depth > 0]
    best_rr = max(reranked, key=lambda o: (options[o], -o.cost)) if reranked else None
    within = [o for o in order if options[o] >= best_q - tolerance - EPS]
    return _Candidates(options, order, best_q, best, best_rr, within)


def _latency_of(latency: Mapping[Option, Mapping[str, Any]], latency_stat: str
                ) -> Callable[[Option], float | None]:
    """Each option's rerank latency statistic (None: not measured); depth 0 reranks nothing,
    so it costs no rerank latency."""
    def lat(o: Option) -> float | None:
        if o.depth == 0:
            return 0.0
        value = (latency.get(o) or {}).get(latency_stat)
        return None if value is None else float(value)

    return lat


def _opening_reasons(c: _Candidates, *, metric: str, tolerance: float,
                     first_stage_quality: float | None, p_values: Mapping[Option, float],
                     test: str | None) -> list[str]:
    """The sentences stating the curve before any choice: first stage against the best
    reranked option (when both exist), then the best option and its tolerance band."""
    reasons = [
        f"best {metric} = {c.best_q:.4f} at {c.best.label()}; within {tolerance:g} of it: "
        + ", ".join(o.label() for o in c.within) + "."
    ]
    if first_stage_quality is not None and c.best_rr is not None:
        diff = c.options[c.best_rr] - first_stage_quality
        reasons.insert(0, f"first stage alone: {metric} = {first_stage_quality:.4f}; best "
                       f"reranked, {c.best_rr.label()}: {c.options[c.best_rr]:.4f} ({diff:+.4f} "
                       f"vs first stage{_fmt_p(p_values.get(c.best_rr), test)}).")
    return reasons


def _apply_budget(c: _Candidates, lat: Callable[[Option], float | None], *,
                  latency_budget_ms: float | None, latency_stat: str,
                  latency_measured: bool) -> tuple[Option | None, str | None]:
    """The chosen option after the latency budget, with the sentence saying how the budget
    decided (None without a budget): the cheapest near-best option that fits, else the best
    quality that fits, else none; a budget that cannot be checked is not applied."""
    chosen: Option | None = c.within[0]
    if latency_budget_ms is None:
        return chosen, None
    order = c.order
    if not latency_measured or any(lat(o) is None for o in order):
        return chosen, (f"latency budget {latency_budget_ms:g} ms not applied: latency "
                        "was not measured" + ("" if not latency_measured else
                                              " at every depth (latency.depths)") + ".")
    word = "depth" if all(o.max_length is None for o in order) else "option"
    fits = [o for o in order if lat(o) <= latency_budget_ms]  # type: ignore[operator]
    near = [o for o in c.within if o in fits]
    if near:
        return near[0], (f"within the {latency_budget_ms:g} ms budget ({latency_stat}): "
                         + ", ".join(o.label() for o in fits) + ".")
    if fits:
        chosen = max(fits, key=lambda o: (c.options[o], -o.cost))
        return chosen, (f"no near-best {word} fits the {latency_budget_ms:g} ms budget "
                        f"({latency_stat}); best quality that fits is {chosen.label()}.")
    return None, (f"no depth fits the {latency_budget_ms:g} ms budget: "
                  f"{order[0].label()} takes {_fmt_lat(lat(order[0]))} "
                  f"({latency_stat}).")


def _action(chosen: Option | None) -> str:
    """The advice in one word: depth 0 chosen means the first stage alone is as good, so
    "don't rerank"; no option chosen means no advice."""
    return "none" if chosen is None else "don't rerank" if chosen.depth == 0 else "rerank"


def _vs_first_stage(c: _Candidates, chosen: Option | None, first_stage_quality: float | None,
                    p_values: Mapping[Option, float]) -> tuple[float | None, float | None]:
    """The chosen option's quality minus the first stage's, with its p-value; for "don't
    rerank", the best reranked option's (the deficit that justifies not reranking)."""
    if chosen is None or first_stage_quality is None:
        return None, None
    ref = c.best_rr if chosen.depth == 0 else chosen
    if ref is None:
        return None, None
    return c.options[ref] - first_stage_quality, p_values.get(ref)


def _verdict(c: _Candidates, chosen: Option, lat: Callable[[Option], float | None], *,
             metric: str, latency_budget_ms: float | None, latency_stat: str,
             vs_fs: float | None, p: float | None, test: str | None) -> str:
    """The closing sentence naming the recommendation and why: for depth 0, whether the
    tolerance or the budget ruled reranking out; else its quality against the best and the
    first stage, and its latency."""
    options = c.options
    if chosen.depth == 0:
        why = ("no reranking depth beats it by more than the tolerance"
               if chosen in c.within else f"nothing reranked fits the {latency_budget_ms:g} ms "
               "budget")
        return (f"recommended: don't rerank (depth 0): the first stage alone gives "
                f"{metric} = {options[chosen]:.4f} and {why}"
                + ("" if vs_fs is None or c.best_rr is None else
                   f"; the best reranked option, {c.best_rr.label()}, is {vs_fs:+.4f} "
                   f"vs first stage{_fmt_p(p, test)}") + ".")
    return (f"recommended {chosen.label()}: {metric} = {options[chosen]:.4f} "
            f"({options[chosen] - c.best_q:+.4f} vs best"
            + ("" if vs_fs is None else
               f", {vs_fs:+.4f} vs first stage{_fmt_p(p, test)}")
            + f"), {latency_stat} rerank latency {_fmt_lat(lat(chosen))} per query.")
