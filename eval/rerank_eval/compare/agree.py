"""``rerank-eval agree``: do rerankers that serve one checkpoint (torch, ONNX, OpenVINO,
Infinity, ...) score alike? Reads a results.json, its per_query.csv and the raw per-pair scores
each reranker saved (``<runs_dir>/<name>.scores.tsv``); the computation is
:mod:`rerank_eval.analysis.agreement`, the paired test is compare's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from rerank_eval.analysis.agreement import (
    MetricDelta,
    PairAgreement,
    agreement_failures,
    metric_delta,
    score_agreement,
)
from rerank_eval.compare.stats import paired_p_value
from rerank_eval.compare.systems import System, load_results
from rerank_eval.errors import InputError
from rerank_eval.results import Results
from rerank_eval.runs import read_model_scores


@dataclass
class AgreementReport:
    """Every compared pair (the first reranker of each pair is the reference)."""

    source: str
    pairs: list[PairAgreement]
    failures: list[str]


def pairs_to_compare(results: Results, names: list[str] | None) -> list[tuple[str, str]]:
    """``names``: the first against each other one. None: within each group of rerankers
    declaring the same non-empty ``model``, the first against each other one."""
    known = results.reranker_names()
    if names is not None:
        for name in names:
            if name not in known:
                raise InputError(f"--rerankers: no reranker {name!r} in the results "
                                 f"(available: {', '.join(known)})")
        if len(names) < 2 or len(set(names)) != len(names):
            raise InputError("--rerankers: name at least two different rerankers")
        return [(names[0], other) for other in names[1:]]
    pairs = same_model_pairs(results)
    if not pairs:
        raise InputError("no two rerankers declare the same model; choose them with "
                         "--rerankers A,B")
    return pairs


def same_model_pairs(results: Results) -> list[tuple[str, str]]:
    """Within each group of rerankers declaring the same non-empty ``model``, the first
    against each other one (empty when no two share a model)."""
    groups: dict[str, list[str]] = {}
    for entry in results.rerankers:
        if entry.model:
            groups.setdefault(entry.model, []).append(entry.name)
    return [(g[0], other) for g in groups.values() if len(g) > 1 for other in g[1:]]


def find_runs_dir(results: Results, results_path: Path, override: str | None) -> Path:
    """Where the runs are: ``override``, else results.json's ``runs_dir`` as written (relative
    to the working directory of the run), tried from here and from the results' folders up."""
    if override is not None:
        path = Path(override)
        if not path.is_dir():
            raise InputError("--runs-dir: not a folder", path=path)
        return path
    if not results.runs_dir:
        raise InputError("results.json names no runs_dir; give --runs-dir", path=results_path)
    written = Path(results.runs_dir)
    candidates = [written] if written.is_absolute() else [
        written, *(base / written for base in results_path.resolve().parents[:3])]
    for path in candidates:
        if path.is_dir():
            return path
    raise InputError(f"runs folder {results.runs_dir!r} not found from here or beside the "
                     "results; give --runs-dir", path=results_path)


def agree(results_path: str | Path, names: list[str] | None = None, *, k: int = 10,
          metrics: list[str] | None = None, depth: int | None = None, test: str = "t-test",
          runs_dir: str | None = None, min_tau: float | None = None,
          max_metric_delta: float | None = None) -> AgreementReport:
    """Agreement of each chosen pair; ``failures`` lists what falls below the thresholds."""
    path = Path(results_path)
    if path.is_dir():
        path = path / "results.json"
    results, systems = load_results(path)
    by_name = {s.name: s for s in systems}
    folder = find_runs_dir(results, path, runs_dir)
    report = AgreementReport(source=str(path), pairs=[], failures=[])
    scores_cache: dict[str, dict[str, dict[str, float]]] = {}

    def scores(name: str) -> dict[str, dict[str, float]]:
        if name not in scores_cache:
            scores_cache[name] = read_model_scores(folder / f"{name}.scores.tsv")
        return scores_cache[name]

    for a, b in pairs_to_compare(results, names):
        ea, eb = results.reranker(a), results.reranker(b)
        pair = score_agreement(a, scores(a), ea.score_transform, b, scores(b),
                               eb.score_transform, k=k)
        pair.metrics = _metric_deltas(by_name.get(a), by_name.get(b), metrics or ["ndcg@10"],
                                      depth, test)
        report.pairs.append(pair)
        report.failures += agreement_failures(pair, min_tau=min_tau,
                                              max_metric_delta=max_metric_delta)
    return report


def _metric_deltas(sa: System | None, sb: System | None, metrics: list[str],
                   depth: int | None, test: str) -> list[MetricDelta]:
    if sa is None or sb is None:
        return []
    out = []
    for metric in metrics:
        at = depth if depth is not None else max(set(sa.depths()) & set(sb.depths()),
                                                 default=None)
        if at is None:
            continue
        va, vb = sa.at(metric, at), sb.at(metric, at)
        if va is None or vb is None:
            raise InputError(f"--metric {metric} at depth {at}: not in per_query.csv for "
                             f"{sa.name} and {sb.name}")
        out.append(metric_delta(metric, at, va, vb, test=test,
                                p_value=lambda x, y: paired_p_value(test, x, y)))
    return out


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else format(value, fmt)


def render_agreement(report: AgreementReport, fmt: str = "table") -> str:
    """The report as a plain-text table (``table``) or JSON (``json``)."""
    if fmt == "json":
        return json.dumps({"source": report.source,
                           "pairs": [p.as_dict() for p in report.pairs],
                           "failures": report.failures}, indent=2) + "\n"
    lines = [f"agreement ({report.source})"]
    for p in report.pairs:
        lines.append(f"\n{p.b} vs {p.a}: {p.pairs} pairs over {p.queries} queries"
                     + (f" ({p.pairs_only_one} pairs scored by one side only, left out)"
                        if p.pairs_only_one else ""))
        scale = (f"on the {p.scale} scale ({p.transform_a} vs {p.transform_b})"
                 if p.scale else f"not comparable ({p.transform_a} vs {p.transform_b})")
        lines.append(f"  |Δscore| max {_num(p.max_abs_delta, '.3g')}  mean "
                     f"{_num(p.mean_abs_delta, '.3g')}  {scale}")
        lines.append(f"  Kendall tau per query: mean {p.tau_mean:.6f}  min {p.tau_min:.6f}"
                     f" (query {p.tau_min_query})")
        lines.append(f"  top-{p.k} set changed: {p.topk_changed:.1%} of queries "
                     f"({len(p.topk_changed_queries)})")
        for m in p.metrics:
            lines.append(f"  {m.metric}@depth {m.depth}: {m.mean_a:.4f} -> {m.mean_b:.4f} "
                         f"(Δ {m.delta:+.4f}, {m.test} p={_num(m.p_value, '.3g')}, "
                         f"{m.queries} queries)")
    if report.failures:
        lines.append("\nFAIL")
        lines += [f"  {f}" for f in report.failures]
    return "\n".join(lines) + "\n"
