"""The release gate: does a candidate's results.json regress against a baseline's?

Rules:
- metric rule: the candidate's mean may fall at most ``max_drop`` (absolute) below the
  baseline's; with ``alpha``, a larger drop only counts when a paired test on the per-query
  values finds it significant (p < alpha), so noise on a small query set cannot fail a build.
- latency rule: the candidate's p95 latency may be at most ``max_p95_ratio`` times the
  baseline's, and only when both were measured on the same hardware id; otherwise the rule
  says why it does not apply (it neither passes nor fails).

Means and tests use the queries both results share, from their per_query.csv.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Discriminator, Field, Tag, field_validator

from rerank_eval.compare import stats
from rerank_eval.compare.conventions import (
    Mismatch,
    allowed_lines,
    check_allow_list,
    check_conventions,
)
from rerank_eval.compare.systems import System, load_results
from rerank_eval.errors import InputError
from rerank_eval.params import (
    FieldError,
    NonNegativeNumber,
    Params,
    PositiveInt,
    PositiveNumber,
    Str,
    as_field_error,
    check_before,
    expected,
    is_non_empty_list,
    parse,
)
from rerank_eval.results import RerankerEntry, Results
from rerank_eval.yaml_file import read_yaml_lines

PASS, FAIL, NOT_APPLICABLE = "pass", "fail", "not applicable"
TOLERANCE = 1e-12


Alpha = Annotated[float, Field(strict=True, gt=0, lt=1, allow_inf_nan=False),
                  expected("a number between 0 and 1")]


class MetricRule(Params):
    """The candidate's mean ``metric`` may fall at most ``max_drop`` below the baseline's."""

    metric: Str
    """A metric both results have, e.g. ndcg@10."""
    max_drop: NonNegativeNumber
    """Largest allowed absolute drop."""
    alpha: Alpha | None = None
    """Count a larger drop only when a paired test finds it significant (p < alpha)."""
    depth: PositiveInt | None = None
    """Reranking depth (default: the largest in both)."""
    reranker: Str | None = None
    """Reranker name (default: the only one of each results)."""

    @field_validator("metric", mode="after")
    @classmethod
    def _canonical(cls, metric: str) -> str:
        from rerank_eval.metrics import parse_metric

        return as_field_error(lambda where: parse_metric(metric, where)).name


class LatencyRule(Params):
    """The candidate's p95 latency may be at most ``max_p95_ratio`` times the baseline's
    (only when both were measured on the same hardware)."""

    max_p95_ratio: PositiveNumber
    depth: PositiveInt | None = None
    reranker: Str | None = None


def _rule_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if "metric" in value:
            return "metric rule"
        if "max_p95_ratio" in value:
            return "latency rule"
    elif isinstance(value, (MetricRule, LatencyRule)):
        return "metric rule" if isinstance(value, MetricRule) else "latency rule"
    return None


Rule = Annotated[
    Annotated[MetricRule, Tag("metric rule")] | Annotated[LatencyRule, Tag("latency rule")],
    Discriminator(_rule_kind, custom_error_type="field", custom_error_message="{message}",
                  custom_error_context={
                      "message": "needs 'metric' (with max_drop) or 'max_p95_ratio'"})]


class GateRules(Params):
    """Rules of ``rerank-eval gate`` (a ``--rules`` YAML file, or the rule flags). ``reranker``,
    ``depth`` and ``alpha`` at the top are defaults for every rule (alpha: metric rules)."""

    reranker: Str | None = None
    depth: PositiveInt | None = None
    alpha: Alpha | None = None
    test: Literal[stats.TESTS] = "t-test"  # type: ignore[valid-type]
    """The paired test behind alpha."""
    rules: Annotated[list[Rule], Field(min_length=1), check_before(
        is_non_empty_list, "expected a non-empty list")]

    @classmethod
    def _check_raw(cls, data: dict[Any, Any]) -> dict[Any, Any]:
        defaults = {k: data[k] for k in ("reranker", "depth", "alpha")
                    if data.get(k) is not None}
        if defaults and isinstance(data.get("rules"), list):
            data = {**data, "rules": [_with_defaults(item, defaults)
                                      for item in data["rules"]]}
        return data


def _with_defaults(item: Any, defaults: dict[str, Any]) -> Any:
    if not isinstance(item, dict):
        return item
    if "max_p95_ratio" in item and "metric" not in item:
        defaults = {k: v for k, v in defaults.items() if k != "alpha"}
    return {**defaults, **item}


@dataclass
class Verdict:
    """The outcome of one rule, with a sentence a person can act on."""

    rule: str
    status: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Side:
    """One results.json: its content, its systems by name and, when given as ``FILE:NAME``,
    the reranker it stands for (so one results file can be gated against itself)."""

    path: Path
    results: Results
    systems: dict[str, System]
    reranker: str | None = None

    @classmethod
    def load(cls, spec: str | Path, label: str = "baseline") -> Side:
        """``spec``: a results.json, its folder, or either followed by ``:NAME`` (a reranker
        of that file)."""
        path, name = split_reranker_spec(spec)
        if path.is_dir():
            path = path / "results.json"
        results, systems = load_results(path)
        side = cls(path, results, {s.name: s for s in systems}, name)
        if name is not None and name not in side.reranker_names():
            raise InputError(f"--{label}: no reranker {name!r} in this results.json (it has: "
                             f"{', '.join(side.reranker_names()) or 'none'})", path=path)
        return side

    def reranker_names(self) -> list[str]:
        return self.results.reranker_names()

    def reranker_entry(self, name: str) -> RerankerEntry:
        return self.results.reranker(name)


def split_reranker_spec(spec: str | Path) -> tuple[Path, str | None]:
    """``FILE`` or ``FILE:NAME``: the path and the reranker named after the last colon. A path
    that exists as written wins (a file name may hold a colon)."""
    text = str(spec)
    if Path(text).exists() or ":" not in text:
        return Path(text), None
    path, name = text.rsplit(":", 1)
    if not name or not path or not Path(path).exists():
        return Path(text), None
    return Path(path), name


def _pick_one(side: Side, label: str, name: str | None) -> str:
    """The reranker of one side: named by ``FILE:NAME``, else ``name`` (``--reranker`` or a
    rule's), else its only one."""
    if side.reranker is not None:
        return side.reranker
    names = side.reranker_names()
    if name is not None:
        if name not in names:
            raise InputError(f"--reranker: {label} has no reranker {name!r} (it has: "
                             f"{', '.join(names) or 'none'})", path=side.path)
        return name
    if not names:
        raise InputError(f"no reranker in {label}", path=side.path)
    if len(names) > 1:
        raise InputError(f"several rerankers in {label} ({', '.join(names)}): choose one with "
                         f"--reranker NAME or --{label} FILE:NAME", path=side.path)
    return names[0]


def _pick_rerankers(base: Side, cand: Side, name: str | None) -> tuple[str, str]:
    """The reranker to judge on each side: the one named by ``FILE:NAME``, else ``name`` in
    both, else the only one of each."""
    return _pick_one(base, "baseline", name), _pick_one(cand, "candidate", name)


def _pick_depth(base: Side, cand: Side, b_name: str, c_name: str, depth: int | None) -> int:
    """``depth``, else the baseline reranker's recommended depth (when both evaluated it),
    else the largest depth both evaluated."""
    b_depths = set(base.systems[b_name].depths())
    c_depths = set(cand.systems[c_name].depths())
    shared = sorted(b_depths & c_depths)
    if depth is None:
        if not shared:
            raise InputError(f"baseline and candidate share no reranking depth "
                             f"({sorted(b_depths)} vs {sorted(c_depths)})")
        recommended = base.reranker_entry(b_name).recommended_depth
        return recommended if recommended in shared else shared[-1]
    if depth not in shared:
        raise InputError(f"--depth {depth}: not evaluated in both results (shared depths: "
                         f"{', '.join(map(str, shared)) or 'none'})")
    return depth


def _label(rule: Rule, b_name: str, c_name: str, depth: int) -> str:
    who = b_name if b_name == c_name else f"{b_name} -> {c_name}"
    what = rule.metric if isinstance(rule, MetricRule) else "latency p95"
    return f"{what} at depth {depth} ({who})"


def check_metric(rule: MetricRule, base: Side, cand: Side, test: str = "t-test") -> Verdict:
    b_name, c_name = _pick_rerankers(base, cand, rule.reranker)
    depth = _pick_depth(base, cand, b_name, c_name, rule.depth)
    label = _label(rule, b_name, c_name, depth)
    b_vals = base.systems[b_name].at(rule.metric, depth)
    c_vals = cand.systems[c_name].at(rule.metric, depth)
    for vals, side, name in ((b_vals, base, b_name), (c_vals, cand, c_name)):
        if vals is None:
            raise InputError(f"--metric: {name} has no {rule.metric!r} at depth {depth} "
                             f"(it has: {', '.join(side.systems[name].metrics())})",
                             path=side.path)
    assert b_vals is not None and c_vals is not None  # checked just above
    common = sorted(set(b_vals) & set(c_vals))
    dropped = len(set(b_vals) | set(c_vals)) - len(common)
    if not common:
        raise InputError("baseline and candidate share no query: are they the same dataset?")
    a = np.array([b_vals[q] for q in common])
    b = np.array([c_vals[q] for q in common])
    drop = float(a.mean() - b.mean())
    details: dict[str, Any] = {
        "metric": rule.metric, "depth": depth, "baseline_reranker": b_name,
        "candidate_reranker": c_name, "baseline": float(a.mean()), "candidate": float(b.mean()),
        "drop": drop, "max_drop": rule.max_drop, "queries": len(common),
        "queries_dropped": dropped, "alpha": rule.alpha,
    }
    means = (f"{a.mean():.4f} -> {b.mean():.4f} (change {-drop:+.4f}, max drop "
             f"{rule.max_drop:.4f}, {len(common)} queries"
             + (f", {dropped} not in both dropped" if dropped else "") + ")")
    if drop <= rule.max_drop + TOLERANCE:
        return Verdict(label, PASS, f"{means}: within the allowed drop", details)
    if rule.alpha is None:
        return Verdict(label, FAIL, f"{means}: REGRESSION, drop exceeds the limit", details)
    p = stats.paired_p_value(test, a, b)
    details.update({"test": test, "p_value": p})
    if p < rule.alpha:
        return Verdict(label, FAIL, f"{means}: REGRESSION, drop exceeds the limit and is "
                       f"significant ({test} p={p:.4g} < {rule.alpha})", details)
    return Verdict(label, PASS, f"{means}: drop exceeds the limit but is not significant "
                   f"({test} p={p:.4g} >= {rule.alpha}); not counted as a regression", details)


def check_latency(rule: LatencyRule, base: Side, cand: Side) -> Verdict:
    b_name, c_name = _pick_rerankers(base, cand, rule.reranker)
    depth = _pick_depth(base, cand, b_name, c_name, rule.depth)
    label = _label(rule, b_name, c_name, depth)
    b_hw = base.results.hardware.id if base.results.hardware else None
    c_hw = cand.results.hardware.id if cand.results.hardware else None
    b_lat = base.reranker_entry(b_name).latency_ms.get(str(depth))
    c_lat = cand.reranker_entry(c_name).latency_ms.get(str(depth))
    details: dict[str, Any] = {"depth": depth, "max_p95_ratio": rule.max_p95_ratio,
                               "baseline_hardware": b_hw, "candidate_hardware": c_hw}
    if (not b_hw or not c_hw or b_lat is None or c_lat is None or b_lat.p95 is None
            or c_lat.p95 is None):
        return Verdict(label, NOT_APPLICABLE,
                       "not applicable: no latency/hardware in results", details)
    if b_hw != c_hw:
        return Verdict(label, NOT_APPLICABLE, f"not applicable: measured on different hardware "
                       f"({b_hw} vs {c_hw}); latencies are not comparable", details)
    b95, c95 = b_lat.p95, c_lat.p95
    ratio = c95 / b95 if b95 > 0 else float("inf")
    details.update({"baseline_p95_ms": b95, "candidate_p95_ms": c95, "ratio": ratio})
    text = (f"p95 {b95:.2f} ms -> {c95:.2f} ms (x{ratio:.3f}, max x{rule.max_p95_ratio}, "
            f"hardware {b_hw})")
    if ratio <= rule.max_p95_ratio + TOLERANCE:
        return Verdict(label, PASS, f"{text}: within the allowed growth", details)
    return Verdict(label, FAIL, f"{text}: REGRESSION, latency grew too much", details)


@dataclass
class GateOutcome:
    """Every rule's verdict, and the convention differences the user allowed
    (``--allow-mismatch``), which the summary and the JUnit file record."""

    verdicts: list[Verdict]
    allowed_mismatches: list[Mismatch] = field(default_factory=list)

    def notes(self) -> list[str]:
        return allowed_lines(self.allowed_mismatches)


def gate(baseline: str | Path, candidate: str | Path, rules: list[Rule],
         test: str = "t-test", allow_mismatch: Sequence[str] = ()) -> GateOutcome:
    """Check every rule. Input problems raise InputError (exit 2), never a verdict; so does a
    difference in conventions (``compare.conventions``) not in ``allow_mismatch``."""
    if not rules:
        raise InputError("no rules: give --metric M --max-drop X, --max-p95-ratio R or --rules")
    if test not in stats.TESTS:
        raise InputError(f"--test: unknown test {test!r} (one of {', '.join(stats.TESTS)})")
    check_allow_list(allow_mismatch)
    base, cand = Side.load(baseline, "baseline"), Side.load(candidate, "candidate")
    allowed = check_conventions(base.results, cand.results, allow_mismatch)
    verdicts = [check_metric(r, base, cand, test) if isinstance(r, MetricRule)
                else check_latency(r, base, cand) for r in rules]
    judged = dict.fromkeys(_pick_rerankers(base, cand, r.reranker)[1] for r in rules)
    return GateOutcome(check_sanity(cand, list(judged)) + verdicts, allowed)


def run_gate(baseline: str | Path, candidate: str | Path, rules: list[Rule],
             test: str = "t-test", allow_mismatch: Sequence[str] = ()) -> list[Verdict]:
    """The verdicts of :func:`gate`."""
    return gate(baseline, candidate, rules, test, allow_mismatch).verdicts


def check_sanity(cand: Side, names: list[str]) -> list[Verdict]:
    """One verdict per judged candidate reranker whose results recorded sanity probes: a
    candidate that fails them fails the gate, whatever its metrics (its scores are suspect:
    label index, pair order, score sign, or an untrained head)."""
    out = []
    for name in names:
        sanity = cand.reranker_entry(name).sanity
        if sanity is None:
            continue
        details: dict[str, Any] = {"reranker": name, "probes": sanity.probes,
                                   "inverted": sanity.inverted}
        label = f"sanity probes ({name})"
        if not sanity.failed:
            out.append(Verdict(label, PASS, f"{sanity.inverted} of {sanity.probes} obvious "
                               "pairs inverted: passes", details))
            continue
        got = "; ".join(f"'{p.query}': relevant {p.relevant_score:.4g} <= irrelevant "
                        f"{p.irrelevant_score:.4g}" for p in sanity.inverted_probes)
        out.append(Verdict(label, FAIL, f"candidate FAILS its sanity probes: {sanity.inverted} "
                           f"of {sanity.probes} obvious pairs ranked the wrong way round"
                           + (f" ({got})" if got else "") + "; check label index, pair order "
                           "and score sign, or the model is untrained", details))
    return out


def exit_code(verdicts: list[Verdict]) -> int:
    return 1 if any(v.status == FAIL for v in verdicts) else 0


def format_verdicts(verdicts: list[Verdict], notes: Sequence[str] = ()) -> str:
    """One line per rule, the ``notes`` (allowed convention differences), then the total."""
    tag = {PASS: "PASS", FAIL: "FAIL", NOT_APPLICABLE: "N/A "}
    lines = [f"{tag[v.status]}  {v.rule}: {v.message}" for v in verdicts]
    lines += [f"NOTE  {note}" for note in notes]
    fails = sum(v.status == FAIL for v in verdicts)
    lines.append(f"gate: {'FAILED' if fails else 'passed'} ({fails} of {len(verdicts)} rules "
                 "regressed)")
    return "\n".join(lines)


# --- rules from YAML ------------------------------------------------------------------------

def load_rules(path: str | Path) -> tuple[list[Rule], str]:
    """Rules from YAML: ``rules: [{metric, max_drop, alpha?, depth?, reranker?} |
    {max_p95_ratio, depth?, reranker?}]``, with optional top-level defaults ``reranker``,
    ``depth``, ``alpha`` and ``test``. Errors name the file, line and field."""
    path = Path(path)
    raw, lines = read_yaml_lines(path, "rules")
    try:
        rules = parse(GateRules, raw, root="gate rules")
    except FieldError as e:
        raise e.located(path, lines.line(e.loc)) from None
    return list(rules.rules), rules.test
