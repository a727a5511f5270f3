"""Every table printed to a terminal comes from one printer (reports/terminal.py): a header, a
rule of dashes under each column, columns two spaces apart, numbers right-aligned and text
left-aligned. Checked on the tables of `run`, `compare` and `bench`."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
from _results_factory import write_results
from rerank_eval.bench import format_report
from rerank_eval.compare import compare_systems, load_systems
from rerank_eval.compare.render import render
from rerank_eval.reports.terminal import frame_table, text_table
from rerank_eval.results import FirstStage
from rerank_eval.runner.results import StageResult, summary_table

NUMBER = re.compile(r"^[<>]?[+\-]?\d[\d,]*(\.\d+)?(e[+\-]\d+)?$")


def _layout(text: str) -> list[list[str]]:
    """The cells of the first table in ``text`` (header first), after checking its layout."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if re.fullmatch(r"-+(  -+)*", line))
    spans = [m.span() for m in re.finditer(r"-+", lines[at])]
    table = [lines[at - 1]] + lines[at + 1:][:_rows(lines[at + 1:])]
    out = []
    for row, line in enumerate(table):
        line = line.ljust(spans[-1][1])
        assert len(line) == spans[-1][1], f"cell wider than its rule: {line!r}"
        gaps = [line[a:b] for (_, a), (b, _) in zip(spans, spans[1:])]
        assert all(g == "  " for g in gaps), f"columns not two spaces apart: {line!r}"
        cells = [line[a:b] for a, b in spans]
        for cell in cells:
            if NUMBER.match(cell.strip()):
                assert not cell.endswith(" "), f"number not right-aligned: {line!r}"
            elif cell.strip() not in ("", "-", "—") and row > 0:  # blanks sit either way
                assert not cell.startswith(" "), f"text not left-aligned: {line!r}"
        out.append([c.strip() for c in cells])
    return out


def _rows(lines: list[str]) -> int:
    return next((i for i, line in enumerate(lines) if not line.strip() or line[0] in "=("),
                len(lines))


def _summary() -> str:
    def ev(v: float) -> SimpleNamespace:
        return SimpleNamespace(means={"ndcg@10": v, "recall@100": v / 2}, queries=1,
                               queries_without_results=0)

    result = SimpleNamespace(
        config=SimpleNamespace(resolved_metrics=[SimpleNamespace(name="ndcg@10"),
                                                 SimpleNamespace(name="recall@100")]),
        first_stage=StageResult("bm25", "first_stage", None, {None: ev(0.3125)},
                                FirstStage(name="bm25", depth=100)),
        rerankers=[StageResult("a-much-longer-reranker-name", "cross-encoder", "m",
                               {10: ev(0.4), 100: ev(0.45)}, None)])
    return summary_table(result)  # type: ignore[arg-type]


def _compare(tmp_path) -> str:
    rng = np.random.default_rng(1)
    qids = [f"q{i}" for i in range(20)]
    base = {q: float(v) for q, v in zip(qids, rng.uniform(0.1, 0.6, 20))}
    path = write_results(tmp_path / "exp", first_stage={"ndcg@10": base}, rerankers={
        "better": {10: {"ndcg@10": {q: v + 0.2 for q, v in base.items()}}}})
    report = compare_systems(load_systems([path]), permutations=50, bootstrap=50)
    return render(report, "table")


def _bench() -> str:
    fid = {"max_abs_diff": 1.5e-6, "kendall_tau_mean": 1.0, "kendall_tau_min": 0.9833,
           "ndcg10_diff": -0.0012}
    return format_report({
        "hardware": {"cpu_model": "cpu", "cores_available": 2, "threads_used": 2,
                     "cpu_native_bf16": False, "torch": "2.13.0"},
        "settings": {"model": "m", "batch_size": 32, "max_length": 256, "device": "cpu",
                     "head_untrained": False, "rounds": 3, "pairs_truncated": 0},
        "pairs": {"source": "bm25 top-100", "count": 600},
        "auto": {"dtype": "float32", "method": "engine/fp32"},
        "methods": {"peer": {"pairs_per_s": 812.25, "fidelity_vs_fp32": fid},
                    "engine/fp32": {"pairs_per_s": 1501.5, "x_peer": 1.85, "x_ceiling": 0.93,
                                    "fidelity_vs_fp32": fid}}})


def test_run_compare_and_bench_tables_share_one_layout(tmp_path):
    summary, compare, bench = _layout(_summary()), _layout(_compare(tmp_path)), _layout(_bench())
    assert summary[0] == ["system", "depth", "ndcg@10", "recall@100"]
    assert summary[1] == ["bm25", "100", "0.3125", "0.1562"] and len(summary) == 4
    assert compare[0][:3] == ["system", "mean", "diff"] and len(compare) == 3
    assert bench[0][:3] == ["method", "pairs/s", "x peer"] and bench[1][:4] == [
        "peer", "812.2", "-", "-"]


def test_numeric_columns_right_aligned_blanks_and_line_breaks():
    text = text_table(["name", "value"], [["a\nb", "1.5"], ["long name", "—"], ["c", "-12.25"]])
    assert text.splitlines() == ["name        value",
                                 "---------  ------",
                                 "a b           1.5",
                                 "long name       —",
                                 "c          -12.25"]
    frame = pd.DataFrame({"system": ["x", "y"], "pairs": [5, 1200], "note": [None, "ok"]})
    assert _layout(frame_table(frame)) == [["system", "pairs", "note"], ["x", "5", "—"],
                                           ["y", "1200", "ok"]]
