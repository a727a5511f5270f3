"""Report tables (pandas) built from results.json files alone (``rerank_eval.results``), so
results from several machines can be merged. Column names carry units and conventions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rerank_eval.errors import InputError
from rerank_eval.results import (
    LatencyStats,
    PairAgreement,
    RerankerEntry,
    Results,
    read_results,
)


def load_results(paths: Sequence[str | Path]) -> list[Results]:
    """Read results.json files (or their folders); each knows its ``source``. Errors name
    the file."""
    out = [read_results(p) for p in paths]
    if not out:
        raise InputError("report: give at least one results.json")
    return out


def hw_id(r: Results) -> str:
    return r.hardware_id


def experiment(r: Results) -> str:
    fs = r.first_stage
    return f"{r.dataset.id or '?'} · {fs.name} top-{fs.depth}"


def metric_names(results: Sequence[Results]) -> list[str]:
    names: list[str] = []
    for r in results:
        for m in r.config.metrics:
            if m not in names:
                names.append(m)
    return names


def rec_metric(r: Results) -> str:
    rec = r.config.recommendation
    names = r.config.metrics
    if rec is not None and rec.metric:
        return rec.metric
    return "ndcg@10" if "ndcg@10" in names or not names else names[0]


def _num(value: Any, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def hardware_frame(results: Sequence[Results]) -> pd.DataFrame:
    """One column per hardware setup, one row per fingerprint field."""
    fields = ["cpu_model", "cores", "cores_available", "threads_used", "ram_gb", "gpu_model",
              "gpu_count", "gpu_memory_gb", "driver", "cuda", "os", "python", "torch",
              "transformers", "load_avg_1m"]
    cols: dict[str, list[str]] = {}
    for r in results:
        if hw_id(r) in cols:
            continue
        values = [None if r.hardware is None else getattr(r.hardware, f) for f in fields]
        cols[hw_id(r)] = ["—" if v is None else str(v) for v in values]
    names = {"ram_gb": "RAM (GiB)", "gpu_memory_gb": "GPU memory (GiB)",
             "load_avg_1m": "load average at start (1 min)"}
    labels = [names.get(f, f) for f in fields]
    return pd.DataFrame(cols, index=labels).rename_axis("field").reset_index()


def quality_frame(results: Sequence[Results]) -> pd.DataFrame:
    """Quality per system and depth; one row for all setups when they agree (to 1e-9). The
    first stage is the depth-0 row of every experiment; "vs first stage" is the
    recommendation metric's difference and paired-test p-value."""
    metrics = metric_names(results)
    rows: dict[tuple, list[tuple[str, dict[str, float]]]] = {}
    vs: dict[tuple, str] = {}
    for r in results:
        fs = r.first_stage
        rows.setdefault((experiment(r), fs.name + " (first stage)", 0), []).append(
            (hw_id(r), fs.metrics))
        for rr in r.rerankers:
            for depth, values in rr.metrics.items():
                key = (experiment(r), rr.name, int(depth))
                rows.setdefault(key, []).append((hw_id(r), values))
                v = rr.vs_first_stage.get(depth)
                if v is not None:
                    vs[key] = f"{v.metric} " + _vs(v.difference, v.p_value)
    out = []
    for key, entries in rows.items():
        exp, system, rerank_depth = key
        same = all(abs(v.get(m, 0) - entries[0][1].get(m, 0)) <= 1e-9
                   for _, v in entries for m in metrics)
        groups = [("all setups" if len(entries) > 1 else entries[0][0], entries[0][1])] if same \
            else entries
        for hw, values in groups:
            out.append({"experiment": exp, "system": system, "rerank depth": rerank_depth,
                        "hardware": hw,
                        **{m: _num(values.get(m), ".4f") for m in metrics},
                        **({"vs first stage (Δ, p)": vs.get(key, "—")} if vs else {})})
    return pd.DataFrame(out)


def latency_frame(results: Sequence[Results]) -> pd.DataFrame:
    """Per-query latency (ms) per setup, system and depth, first stage included."""
    out = []
    for r in results:
        fs = r.first_stage
        if fs.latency_ms is not None:
            out.append({"hardware": hw_id(r), "experiment": experiment(r),
                        "system": fs.name + " (first stage)", "depth": fs.depth,
                        **_lat_cols(fs.latency_ms)})
        for rr in r.rerankers:
            for depth, lat in rr.latency_ms.items():
                out.append({"hardware": hw_id(r), "experiment": experiment(r),
                            "system": rr.name, "depth": int(depth), **_lat_cols(lat)})
    return pd.DataFrame(out)


def _lat_cols(lat: LatencyStats) -> dict[str, str]:
    return {"p50 (ms)": _num(lat.p50, ".1f"), "p95 (ms)": _num(lat.p95, ".1f"),
            "p99 (ms)": _num(lat.p99, ".1f"), "mean (ms)": _num(lat.mean, ".1f"),
            "queries timed": str(lat.queries),
            "pairs/query": _num(lat.pairs_per_query, ".1f")}


def latency_by_setup(r: Results, rr: RerankerEntry) -> dict[str, dict[str, LatencyStats]]:
    """A reranker's latency per hardware id: where it was measured (a Ray worker's hardware,
    several when the pool spans setups), else the run's own hardware."""
    if rr.latency_ms_by_hardware:
        return dict(rr.latency_ms_by_hardware)
    if not rr.latency_ms:
        return {}
    hw = (rr.latency_hardware.id if rr.latency_hardware else None) or hw_id(r)
    return {hw: rr.latency_ms}


def latency_side_by_side(results: Sequence[Results], stat: str = "p50") -> pd.DataFrame:
    """The same systems and depths, one latency column per hardware setup."""
    table: dict[tuple, dict[str, str]] = {}
    setups: list[str] = []
    for r in results:
        for rr in r.rerankers:
            for hw, latency in latency_by_setup(r, rr).items():
                if hw not in setups:
                    setups.append(hw)
                for depth, lat in latency.items():
                    key = (experiment(r), rr.name, int(depth))
                    table.setdefault(key, {})[f"{hw} {stat} (ms)"] = _num(getattr(lat, stat),
                                                                          ".1f")
    rows = [{"experiment": e, "system": s, "rerank depth": d, **v}
            for (e, s, d), v in sorted(table.items())]
    cols = ["experiment", "system", "rerank depth"] + [f"{h} {stat} (ms)" for h in setups]
    return pd.DataFrame(rows, columns=cols).fillna("—")


def throughput_frame(results: Sequence[Results]) -> pd.DataFrame:
    out = []
    for r in results:
        for rr in r.rerankers:
            t = rr.throughput
            if t is None:
                continue
            out.append({"hardware": hw_id(r), "experiment": experiment(r), "system": rr.name,
                        "pairs/s": _num(t.pairs_per_s, ".1f"),
                        "queries/s": _num(t.queries_per_s, ".2f"),
                        "pairs": str(t.pairs), "wall (s)": _num(t.seconds, ".1f"),
                        "batch size": str(t.batch_size), "dtype": str(t.dtype),
                        "device": str(t.device), "torch threads": str(t.threads)})
    return pd.DataFrame(out)


def truncated_share(pairs_truncated: int, pairs_scored: int, pairs_from_cache: int) -> str:
    """Share of the shortlist's pairs (or windows) cut at max_length, as text."""
    total = pairs_scored + pairs_from_cache
    return "—" if not total else f"{pairs_truncated / total:.1%}"


def _vs(diff: float | None, p: float | None) -> str:
    if diff is None:
        return "—"
    return f"{diff:+.4f}" + ("" if p is None else f" (p={p:.3g})")


def advice(rr: RerankerEntry) -> str:
    """What to do, in words: rerank (at which depth and length), don't rerank, or none."""
    rec = rr.recommendation
    if rec is None:
        return "—"
    if rec.depth is None:
        failed = rr.sanity is not None and rr.sanity.failed
        return "none (fails sanity probes)" if failed else "none"
    if rec.depth == 0:
        return "don't rerank"
    return f"rerank top {rec.depth}" + ("" if rec.max_length is None
                                        else f" at max_length {rec.max_length}")


def recommendation_frame(results: Sequence[Results]) -> pd.DataFrame:
    out = []
    for r in results:
        for rr in r.rerankers:
            rec = rr.recommendation
            if rec is None:
                continue
            budget = rec.latency_budget_ms
            out.append({
                "hardware": hw_id(r), "experiment": experiment(r), "system": rr.name,
                "advice": advice(rr),
                "recommended depth": "none" if rec.depth is None else str(rec.depth),
                "metric": rec.metric, "value": _num(rec.quality, ".4f"),
                "vs first stage (Δ, p)": _vs(rec.vs_first_stage, rec.p_value),
                "best (depth)": f"{rec.best_quality:.4f} ({rec.best_depth})",
                "tolerance": f"{rec.tolerance:g}",
                "budget": "none" if budget is None else f"{budget:g} ms {rec.latency_stat}",
                f"latency {rec.latency_stat} (ms)": _num(rec.latency_ms, ".1f"),
                "truncated": truncated_share(rr.pairs_truncated, rr.pairs_scored,
                                             rr.pairs_from_cache),
            })
    return pd.DataFrame(out)


def context_length_frame(results: Sequence[Results]) -> pd.DataFrame:
    """Rerankers with ``max_lengths``: quality per (length, depth), truncated share, pairs
    scored, throughput and latency per length."""
    out = []
    for r in results:
        metric = rec_metric(r)
        for rr in r.rerankers:
            for length, entry in (rr.by_max_length or {}).items():
                t = entry.throughput
                for depth in sorted(entry.metrics, key=int):
                    lat = entry.latency_ms.get(depth)
                    vs = entry.vs_first_stage.get(depth)
                    out.append({
                        "experiment": experiment(r), "hardware": hw_id(r), "system": rr.name,
                        "max_length": length, "rerank depth": int(depth),
                        metric: _num(entry.metrics[depth].get(metric), ".4f"),
                        "vs first stage (Δ, p)": ("—" if vs is None
                                                  else _vs(vs.difference, vs.p_value)),
                        "truncated": truncated_share(entry.pairs_truncated, entry.pairs_scored,
                                                     entry.pairs_from_cache),
                        "pairs scored": str(entry.pairs_scored + entry.pairs_from_cache),
                        "pairs/s": _num(t.pairs_per_s if t else None, ".1f"),
                        "p95 (ms)": _num(lat.p95 if lat else None, ".1f"),
                    })
    return pd.DataFrame(out)


def long_docs_frame(results: Sequence[Results]) -> pd.DataFrame:
    """Rerankers scoring passages as windows (``long_docs``): documents, windows, pairs."""
    out = []
    for r in results:
        for rr in r.rerankers:
            ld = rr.long_docs
            if ld is None:
                continue
            out.append({"experiment": experiment(r), "system": rr.name,
                        "strategy": ld.strategy, "passage tokens": str(ld.passage_tokens),
                        "stride": str(ld.stride), "documents scored": str(ld.documents),
                        "documents split": str(ld.documents_split),
                        "pairs scored (windows)": str(ld.windows),
                        "truncated": truncated_share(rr.pairs_truncated, rr.pairs_scored,
                                                     rr.pairs_from_cache)})
    return pd.DataFrame(out)


def warnings(results: Sequence[Results]) -> list[str]:
    """What a reader must know before trusting a number: rerankers failing their sanity
    probes (which, expected vs got) and latency measured on a machine that was loaded."""
    out = []
    for r in results:
        for rr in r.rerankers:
            s = rr.sanity
            if s is not None and s.failed:
                probes = "; ".join(
                    f"'{p.query}': expected the relevant passage above the irrelevant one, got "
                    f"{p.relevant_score:.4g} vs {p.irrelevant_score:.4g}"
                    for p in s.inverted_probes)
                out.append(f"{rr.name} FAILS its sanity probes ({s.inverted} of {s.probes} "
                           "obvious pairs ranked the wrong way round: check label index, pair "
                           "order and score sign, or the model is untrained); it gets no "
                           "recommendation and its numbers should not be trusted."
                           + (f" Inverted: {probes}." if probes else ""))
            setup = rr.latency_setup
            if setup is not None and setup.reliable is False:
                out.append(f"{rr.name} on {hw_id(r)}: latency figures are unreliable: "
                           + "; ".join(setup.unreliable_reasons or []) + ".")
    return out


def output_cut_frame(results: Sequence[Results]) -> pd.DataFrame:
    """Quality when keeping only the top k of the recommended depth's ranking."""
    out = []
    for r in results:
        for rr in r.rerankers:
            depth = rr.recommended_depth
            cut = rr.output_cut.get(str(depth))
            if depth is None or not cut:
                continue
            out.append({"hardware": hw_id(r), "experiment": experiment(r), "system": rr.name,
                        "rerank depth": depth, **{m: f"{v:.4f}" for m, v in cut.items()}})
    return pd.DataFrame(out)


AGREEMENT_CAPTION = (
    "Rerankers declaring the same model (one checkpoint through several backends), each "
    "against the first of its group: |Δscore| on a common scale (a sigmoid backend's "
    "probabilities vs the sigmoid of the other's logits), Kendall tau of each query's "
    "scores (mean; min and its query), share of queries whose top-k set changed, and "
    "Δ of each metric at the deepest common depth (b - a) with the paired test's p. "
    "rerank-eval agree RESULTS --min-tau T --max-metric-delta D gates on it.")


def agreement_row(pair: PairAgreement) -> dict[str, str]:
    """One pair's agreement as table cells (the report's and compare's)."""
    def num(value: float | None, fmt: str) -> str:  # NaN (no queries) reads as missing
        return _num(None if value != value else value, fmt)

    return {"pair": f"{pair.b} vs {pair.a}",
            "scale": pair.scale or f"not comparable ({pair.transform_a}/{pair.transform_b})",
            "pairs": f"{pair.pairs:,}", "queries": str(pair.queries),
            "max |Δscore|": num(pair.max_abs_delta, ".3g"),
            "mean |Δscore|": num(pair.mean_abs_delta, ".3g"),
            "tau mean": num(pair.tau_mean, ".6f"),
            "tau min (query)": f"{num(pair.tau_min, '.6f')} ({pair.tau_min_query or '—'})",
            f"top-{pair.k} changed": f"{pair.topk_changed:.1%}",
            "Δ quality (p)": "; ".join(
                f"{m.metric} at depth {m.depth}: {m.delta:+.4f} (p {num(m.p_value, '.3g')})"
                for m in pair.metrics) or "—"}


def agreement_frame(results: Sequence[Results]) -> pd.DataFrame:
    """Backend agreement of every results file's same-model rerankers."""
    return pd.DataFrame([{"experiment": experiment(r), **agreement_row(pair)}
                         for r in results for pair in r.agreement])


def api_cost_frame(results: Sequence[Results]) -> pd.DataFrame:
    """Requests, retries, billed units and money of every reranker behind an API (hosted
    kinds and listwise chat endpoints)."""
    out = []
    for r in results:
        for rr in r.rerankers:
            u = rr.usage
            if u is None:
                continue
            extra = u.model_extra or {}
            tokens_in, tokens_out = extra.get("input_tokens"), extra.get("output_tokens")
            billed = (f"{u.search_units:g} search units" if u.search_units is not None
                      else f"{u.total_tokens:,.0f} tokens" if u.total_tokens is not None
                      else f"{tokens_in:,} in / {tokens_out:,} out tokens"
                      if tokens_in is not None and tokens_out is not None else "—")
            out.append({"experiment": experiment(r), "system": rr.name,
                        "kind": str(rr.kind), "requests": str(u.requests),
                        "retries": str(u.retries),
                        "retry reasons": ", ".join(f"{k} x{v}" for k, v in
                                                   sorted(u.retry_reasons.items())) or "—",
                        "billed": billed,
                        "cost (USD)": "no price" if rr.cost_usd is None
                        else f"{rr.cost_usd:.4f}"})
    return pd.DataFrame(out)


def listwise_frame(results: Sequence[Results]) -> pd.DataFrame:
    """Per listwise reranker: windows, requests per depth, and how often answers needed
    repair."""
    out = []
    for r in results:
        for rr in r.rerankers:
            lw = rr.listwise
            if lw is None:
                continue
            per_depth = "; ".join(f"@{d}: {c.requests}/{c.windows}"
                                  for d, c in sorted(lw.per_depth.items(),
                                                     key=lambda kv: int(kv[0])))
            lat = lw.window_latency_ms
            out.append({"experiment": experiment(r), "system": rr.name,
                        "backend": str(lw.backend),
                        "window/stride/passes": f"{lw.window}/{lw.stride}/{lw.passes}",
                        "windows": str(lw.windows), "requests": str(lw.requests),
                        "requests/windows per depth": per_depth or "—",
                        "answers": str(lw.answers),
                        "ok": str(lw.ok), "wrong format": str(lw.wrong_format),
                        "repetition": str(lw.repetition),
                        "out of range": str(lw.out_of_range), "missing": str(lw.missing),
                        "kept order": str(lw.kept_order),
                        "window p50 (ms)": _num(lat.p50 if lat else None, ".0f")})
    return pd.DataFrame(out)


def score_quantile_frame(results: Sequence[Results]) -> pd.DataFrame:
    out = []
    seen = set()
    for r in results:
        for rr in r.rerankers:
            dist = rr.score_distribution
            key = (experiment(r), rr.name)
            # A listwise reranker's scores are its ranks: no distribution to show.
            if dist is None or not dist.count or key in seen or rr.listwise is not None:
                continue
            seen.add(key)
            out.append({"experiment": key[0], "system": key[1], "pairs": dist.count,
                        "relevant": dist.relevant_count,
                        "mean": _num(dist.mean, ".4g"), "std": _num(dist.std, ".3g"),
                        **{q: f"{v:.4g}" for q, v in (dist.quantiles or {}).items()}})
    return pd.DataFrame(out)
