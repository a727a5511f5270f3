"""`rerank-eval compare`: side-by-side tables with paired statistics against a baseline."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import scipy.stats
from _results_factory import write_results
from rerank_eval.cli import main
from rerank_eval.compare import compare_systems, load_systems
from rerank_eval.compare.stats import correct

QIDS = [f"q{i:02d}" for i in range(30)]


def _values(rng: np.random.Generator, shift: float) -> dict[str, float]:
    return {q: float(np.clip(v, 0, 1)) for q, v in zip(QIDS, rng.uniform(0.2, 0.8, 30) + shift)}


@pytest.fixture
def results(tmp_path):
    """BM25 first stage, a clearly better reranker and a slightly better one, at two depths."""
    rng = np.random.default_rng(11)
    bm25 = {q: float(v) for q, v in zip(QIDS, rng.uniform(0.1, 0.7, 30))}
    good = {d: {"ndcg@10": {q: min(1.0, v + 0.2 + 0.05 * rng.standard_normal())
                            for q, v in bm25.items()}} for d in (10, 20)}
    meh = {d: {"ndcg@10": {q: min(1.0, max(0.0, v + 0.01 * rng.standard_normal()))
                           for q, v in bm25.items()}} for d in (10, 20)}
    return write_results(tmp_path / "exp", first_stage={"ndcg@10": bm25},
                         rerankers={"good": good, "meh": meh})


def _row(cell, name):
    return next(r for r in cell.rows if r.system == name)


def test_p_values_match_scipy_on_the_same_per_query_values(results):
    systems = load_systems([results])
    report = compare_systems(systems, baseline="bm25", permutations=2000)
    by_name = {s.name: s for s in systems}
    for cell in report.cells:
        base = by_name["bm25"].at(cell.metric, cell.depth)
        qids = sorted(base)
        a = np.array([base[q] for q in qids])
        raw = []
        for name in ("good", "meh"):
            other = by_name[name].at(cell.metric, cell.depth)
            b = np.array([other[q] for q in qids])
            row = _row(cell, name)
            assert row.p_values["t-test"] == pytest.approx(scipy.stats.ttest_rel(a, b).pvalue)
            assert row.p_values["wilcoxon"] == pytest.approx(scipy.stats.wilcoxon(b, a).pvalue)
            assert row.diff == pytest.approx(b.mean() - a.mean())
            assert row.ci_low <= row.diff <= row.ci_high
            assert row.wins + row.ties + row.losses == len(qids)
            raw.append(row.p_value)
        # Holm across the compared systems of one metric and depth.
        assert [_row(cell, n).p_adjusted for n in ("good", "meh")] == pytest.approx(
            correct(raw, "holm"))
    assert _row(report.cells[0], "good").significant is True


def test_one_table_per_metric_and_depth_with_the_first_stage_in_each(results):
    report = compare_systems(load_systems([results]), permutations=200, bootstrap=200)
    assert [(c.metric, c.depth) for c in report.cells] == [("ndcg@10", 10), ("ndcg@10", 20)]
    for cell in report.cells:
        assert [r.system for r in cell.rows] == ["bm25", "good", "meh"]
        assert cell.rows[0].baseline and cell.rows[0].p_value is None


def test_only_queries_in_every_system_are_compared_and_the_rest_counted(tmp_path, results):
    rng = np.random.default_rng(3)
    partial = {q: v for q, v in _values(rng, 0.1).items() if q not in ("q00", "q01", "q02")}
    other = write_results(tmp_path / "other", name="other", first_stage={"ndcg@10": partial},
                          rerankers={}, fs_name="dense")
    # Another first stage is another convention: allowed here, and recorded.
    report = compare_systems(load_systems([results, other]), depths=[10], permutations=200,
                             bootstrap=200, allow_mismatch=["first_stage"])
    assert report.settings.allowed_mismatches == [
        "allowed mismatch: exp and other differ in first_stage: bm25 top-100 vs dense top-100"]
    cell = report.cells[0]
    assert (cell.queries, cell.queries_dropped) == (27, 3)
    bm25 = _row(cell, "bm25")
    full = json.loads(results.read_text())["first_stage"]["metrics"]["ndcg@10"]
    assert bm25.mean != pytest.approx(full)  # the mean is over the 27 shared queries


def test_same_system_names_from_two_results_are_prefixed_with_their_experiment(results,
                                                                                 tmp_path):
    rng = np.random.default_rng(5)
    again = write_results(tmp_path / "again", name="again",
                          first_stage={"ndcg@10": _values(rng, 0)},
                          rerankers={"good": {10: {"ndcg@10": _values(rng, 0.1)}}})
    names = [s.name for s in load_systems([results, again])]
    assert names == ["exp/bm25", "exp/good", "meh", "again/bm25", "again/good"]


def test_trec_runs_are_evaluated_against_qrels(tmp_path):
    from rerank_eval.metrics import evaluate_ranking, parse_metrics
    from rerank_eval.runs import Run, write_trec_run

    qrels = {"1": {"a": 1, "c": 2}, "2": {"b": 1}, "3": {"c": 1}}
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{g}\n" for q, j in qrels.items() for d, g in j.items()))
    run_a = {"1": ["a", "b", "c"], "2": ["a", "b", "c"], "3": ["a", "b", "c"]}
    run_b = {"1": ["c", "a", "b"], "2": ["b", "a", "c"], "3": ["c", "b", "a"]}
    write_trec_run(Run("a", run_a), tmp_path / "a.trec")
    write_trec_run(Run("b", run_b), tmp_path / "b.trec")
    systems = load_systems([tmp_path / "a.trec", tmp_path / "b.trec"],
                           qrels_path=tmp_path / "qrels.tsv", metrics=["ndcg@10"])
    report = compare_systems(systems, permutations=100, bootstrap=100)
    (cell,) = report.cells
    assert cell.depth is None
    expected = evaluate_ranking(run_b, qrels, parse_metrics(["ndcg@10"])).means["ndcg@10"]
    assert _row(cell, "b").mean == pytest.approx(expected)
    assert (_row(cell, "b").wins, _row(cell, "b").losses) == (3, 0)


def test_cli_formats(results, tmp_path, capsys):
    assert main(["compare", str(results), "--depth", "10", "--permutations", "200",
                 "--bootstrap", "200"]) == 0
    table = capsys.readouterr().out
    assert "bm25 (baseline)" in table and "W/T/L" in table and "holm" in table
    out = tmp_path / "cmp.json"
    assert main(["compare", str(results.parent), "--format", "json", "--out", str(out),
                 "--test", "wilcoxon", "--correction", "bonferroni",
                 "--permutations", "200", "--bootstrap", "200"]) == 0
    data = json.loads(out.read_text())
    assert data["settings"]["test"] == "wilcoxon"
    assert data["settings"]["correction"] == "bonferroni"
    good = next(r for r in data["cells"][0]["rows"] if r["system"] == "good")
    assert good["p_value"] == good["p_values"]["wilcoxon"]
    assert good["p_adjusted"] == pytest.approx(min(1.0, 2 * good["p_value"]))
    for fmt, marker in (("md", "| system | mean |"), ("html", "<table>")):
        assert main(["compare", str(results), "--format", fmt, "--permutations", "50",
                     "--bootstrap", "50"]) == 0
        assert marker in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--baseline", "nope"], "no system named 'nope'"),
    (["--metric", "mrr@10"], "has no 'mrr@10'"),
    (["--depth", "50"], "no system was reranked at depth 50"),
    (["--metric", "ndgc@10"], "unknown metric"),
])
def test_cli_bad_input_is_one_line_and_exit_2(results, capsys, args, message):
    assert main(["compare", str(results), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_trec_run_without_qrels_is_an_input_error(tmp_path, capsys):
    (tmp_path / "a.trec").write_text("1 Q0 a 1 1.0 x\n")
    assert main(["compare", str(tmp_path / "a.trec"), "--metric", "ndcg@10"]) == 2
    assert "needs --qrels" in capsys.readouterr().err


def test_missing_per_query_csv_is_an_input_error(results, capsys):
    (results.parent / "per_query.csv").unlink()
    assert main(["compare", str(results)]) == 2
    assert "per_query.csv not found" in capsys.readouterr().err


def test_hostile_system_names_are_text_in_md_and_html(tmp_path, capsys):
    rng = np.random.default_rng(7)
    hostile = "<script>alert(1)</script>|x `y`"
    path = write_results(tmp_path / "exp", first_stage={"ndcg@10": _values(rng, 0)},
                         rerankers={hostile: {10: {"ndcg@10": _values(rng, 0.1)}}})
    args = ["compare", str(path), "--permutations", "50", "--bootstrap", "50"]
    assert main([*args, "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert "<script>" not in md
    row = next(line for line in md.splitlines() if "alert" in line)
    assert row.startswith("| &lt;script&gt;alert(1)&lt;/script&gt;\\|x \\`y\\` |")
    header = next(line for line in md.splitlines() if line.startswith("| system"))
    split = r"(?<!\\)\|"
    assert len(re.split(split, row)) == len(re.split(split, header))
    assert main([*args, "--format", "html"]) == 0
    html = capsys.readouterr().out
    assert "<script>" not in html
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;|x `y`</td>" in html
