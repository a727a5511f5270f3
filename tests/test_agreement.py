"""Agreement across backends (``analysis.agreement``, ``rerank-eval agree``): scores on a
common scale, per-query Kendall tau against a counting oracle, top-k set changes, Δmetric with
the paired test, and the gate's exit code."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from _results_factory import write_results
from rerank_eval.analysis.agreement import (
    agreement_failures,
    metric_delta,
    score_agreement,
)
from rerank_eval.cli import main
from rerank_eval.errors import InputError
from rerank_eval.results import read_results, results_json
from rerank_eval.runs import read_model_scores


def kendall_tau_b(a: list[float], b: list[float]) -> float:
    """Oracle: tau-b by counting concordant and discordant pairs (ties per side)."""
    concordant = discordant = ties_a = ties_b = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        da, db = a[i] - a[j], b[i] - b[j]
        if da == 0 and db == 0:
            continue
        if da == 0:
            ties_a += 1
        elif db == 0:
            ties_b += 1
        elif da * db > 0:
            concordant += 1
        else:
            discordant += 1
    denom = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denom


def random_scores(seed: int, queries: int = 6, docs: int = 12) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    return {f"q{i}": {f"d{j}": float(rng.normal()) for j in range(docs)} for i in range(queries)}


def test_tau_and_deltas_match_the_definitions_on_raw_scores():
    a = random_scores(0)
    rng = np.random.default_rng(1)
    b = {q: {d: s + float(rng.normal(scale=0.3)) for d, s in docs.items()}
         for q, docs in a.items()}
    got = score_agreement("torch", a, "identity", "onnx", b, "identity", k=3)
    diffs = [abs(a[q][d] - b[q][d]) for q in a for d in a[q]]
    assert got.max_abs_delta == pytest.approx(max(diffs))
    assert got.mean_abs_delta == pytest.approx(sum(diffs) / len(diffs))
    assert got.pairs == 72 and got.queries == 6 and got.pairs_only_one == 0
    for q in a:
        docs = sorted(a[q])
        expected = kendall_tau_b([a[q][d] for d in docs], [b[q][d] for d in docs])
        assert got.tau_per_query[q] == pytest.approx(expected)
    assert got.tau_min == min(got.tau_per_query.values())
    assert got.tau_mean == pytest.approx(np.mean(list(got.tau_per_query.values())))
    top = {q: {n for n, _ in sorted(s.items(), key=lambda x: -x[1])[:3]} for q, s in a.items()}
    top_b = {q: {n for n, _ in sorted(s.items(), key=lambda x: -x[1])[:3]} for q, s in b.items()}
    changed = sorted(q for q in a if top[q] != top_b[q])
    assert got.topk_changed_queries == changed
    assert got.topk_changed == pytest.approx(len(changed) / 6)


def test_sigmoid_scores_are_compared_as_probabilities():
    logits = random_scores(2)
    probs = {q: {d: 1 / (1 + math.exp(-s)) for d, s in docs.items()}
             for q, docs in logits.items()}
    got = score_agreement("torch", logits, "identity", "vllm", probs, "sigmoid")
    assert got.scale == "sigmoid"
    assert got.max_abs_delta == pytest.approx(0, abs=1e-12)
    assert got.tau_min == pytest.approx(1.0) and got.topk_changed == 0
    # the other way round, and two sigmoid sides, need no mapping either
    assert score_agreement("v", probs, "sigmoid", "t", logits, "identity").max_abs_delta \
        == pytest.approx(0, abs=1e-12)


def test_unknown_transforms_give_rankings_but_no_score_delta():
    a = random_scores(3)
    got = score_agreement("torch", a, "identity", "cohere", a, "unknown")
    assert got.scale is None and got.max_abs_delta is None
    assert got.tau_min == pytest.approx(1.0)


def test_pairs_scored_by_one_side_only_are_counted_and_left_out():
    a = {"q1": {"d1": 1.0, "d2": 2.0, "d3": 3.0}}
    b = {"q1": {"d1": 1.0, "d2": 2.5}, "q2": {"d9": 0.0}}
    got = score_agreement("a", a, "identity", "b", b, "identity")
    assert got.pairs == 2 and got.pairs_only_one == 2 and got.queries == 1
    assert got.max_abs_delta == pytest.approx(0.5)


def test_constant_scores_count_as_agreement_only_when_the_orders_match():
    flat = {"q": {"d1": 0.0, "d2": 0.0, "d3": 0.0}}
    varied = {"q": {"d1": 3.0, "d2": 2.0, "d3": 1.0}}
    assert score_agreement("a", flat, "identity", "b", flat, "identity").tau_min == 1.0
    # ties by doc id descending put d3 first on the flat side: not the varied order
    assert score_agreement("a", flat, "identity", "b", varied, "identity").tau_min == 0.0


def test_metric_delta_and_the_gate():
    base = {"q1": 0.5, "q2": 0.7, "q3": 0.9}
    cand = {"q1": 0.5, "q2": 0.6, "q3": 0.9, "q4": 1.0}  # q4 has no baseline value: left out
    seen = []

    def p(x, y):
        seen.append((list(x), list(y)))
        return 0.42

    m = metric_delta("ndcg@10", 100, base, cand, test="t-test", p_value=p)
    assert m.queries == 3 and m.delta == pytest.approx(-0.1 / 3) and m.p_value == 0.42
    assert seen == [([0.5, 0.7, 0.9], [0.5, 0.6, 0.9])]  # paired by query id
    agreement = score_agreement("a", random_scores(4), "identity", "b", random_scores(5),
                                "identity")
    agreement.metrics = [m]
    failures = agreement_failures(agreement, min_tau=0.999, max_metric_delta=0.001)
    assert len(failures) == 2
    assert "Kendall tau" in failures[0] and "|Δndcg@10| at depth 100" in failures[1]
    assert agreement_failures(agreement) == []


# -- the command ------------------------------------------------------------------------------

def _write_agreement_run(tmp_path: Path, scores: dict[str, dict[str, dict[str, float]]],
                         transforms: dict[str, str], models: dict[str, str]) -> Path:
    """results.json + per_query.csv (nDCG@10 at depth 10 from the factory) and each
    reranker's scores.tsv, as a run writes them."""
    queries = sorted(next(iter(scores.values())))
    ndcg = {name: {10: {"ndcg@10": {q: 0.5 + 0.01 * i + (0.001 * (i % 3) if name == "b" else 0)
                                    for i, q in enumerate(queries)}}}
            for name in scores}
    path = write_results(tmp_path / "reports", first_stage={"ndcg@10": {q: 0.3 for q in queries}},
                         rerankers=ndcg)
    results = read_results(path)
    results.runs_dir = str(tmp_path / "runs")
    for entry in results.rerankers:
        entry.score_transform = transforms[entry.name]
        entry.model = models[entry.name]
    path.write_text(results_json(results), encoding="utf-8")
    (tmp_path / "runs").mkdir()
    for name, per_query in scores.items():
        lines = ["query_id\tdoc_id\tscore"] + [f"{q}\t{d}\t{s!r}" for q in per_query
                                                for d, s in per_query[q].items()]
        (tmp_path / "runs" / f"{name}.scores.tsv").write_text("\n".join(lines) + "\n")
    return path


def test_agree_command_reports_and_gates(tmp_path, capsys):
    a = random_scores(6)
    b = {q: {d: 1 / (1 + math.exp(-s)) + 1e-7 for d, s in docs.items()} for q, docs in a.items()}
    path = _write_agreement_run(tmp_path, {"a": a, "b": b},
                                {"a": "identity", "b": "sigmoid"}, {"a": "m", "b": "m"})
    assert main(["agree", str(path), "--format", "json"]) == 0  # same model: paired by default
    out = json.loads(capsys.readouterr().out)
    (pair,) = out["pairs"]
    assert (pair["a"], pair["b"], pair["scale"]) == ("a", "b", "sigmoid")
    assert pair["max_abs_delta"] == pytest.approx(1e-7, rel=1e-3)
    assert pair["tau_min"] == pytest.approx(1.0)
    (m,) = pair["metrics"]
    assert (m["metric"], m["depth"], m["test"]) == ("ndcg@10", 10, "t-test")
    assert m["delta"] == pytest.approx(0.001 * sum(i % 3 for i in range(6)) / 6)
    assert main(["agree", str(path), "--rerankers", "a,b", "--min-tau", "0.999"]) == 0
    assert "Kendall tau per query: mean 1.000000" in capsys.readouterr().out
    assert main(["agree", str(path), "--rerankers", "a,b",
                 "--max-metric-delta", "0.0005"]) == 1
    assert "|Δndcg@10| at depth 10 is 0.001000, above 0.0005" in capsys.readouterr().out
    assert m["p_value"] is not None and 0 < m["p_value"] < 1


def test_agree_command_bad_input_is_one_line(tmp_path, capsys):
    a = random_scores(7)
    path = _write_agreement_run(tmp_path, {"a": a, "b": a}, {"a": "identity", "b": "identity"},
                                {"a": "m1", "b": "m2"})
    assert main(["agree", str(path)]) == 2
    assert "no two rerankers declare the same model" in capsys.readouterr().err
    assert main(["agree", str(path), "--rerankers", "a,zz"]) == 2
    assert "no reranker 'zz'" in capsys.readouterr().err
    (tmp_path / "runs" / "b.scores.tsv").write_text("query_id\tdoc_id\tscore\nq0\td1\tnope\n")
    assert main(["agree", str(path), "--rerankers", "a,b"]) == 2
    err = capsys.readouterr().err
    assert "b.scores.tsv" in err and ":2" in err and err.count("\n") == 1


def test_model_scores_reader_refuses_bad_files(tmp_path):
    p = tmp_path / "x.scores.tsv"
    p.write_text("qid\tdoc\n")
    with pytest.raises(InputError, match="header"):
        read_model_scores(p)
    p.write_text("query_id\tdoc_id\tscore\nq\td\t1.5\nq\td\t2\n")
    with pytest.raises(InputError, match="appears twice"):
        read_model_scores(p)
    p.write_text("query_id\tdoc_id\tscore\nq\td\t1.5\nq\te\t-2e-3\n")
    assert read_model_scores(p) == {"q": {"d": 1.5, "e": -0.002}}


@pytest.mark.slow  # ~35 s on 2 shared cores (BM25 over SciFact, ranx's first compile)
def test_two_backends_of_one_model_agree_end_to_end(tmp_path, scifact_dir, tiny_cross_encoder,
                                                    capsys):
    """A real run: the tiny checkpoint in fp32 twice, batched differently (padding differs):
    the two agree to float noise, and agree reads what the run wrote."""
    from rerank_eval.config import parse_config
    from rerank_eval.runner import run_experiment

    ce = {"kind": "cross-encoder", "model": str(tiny_cross_encoder), "max_length": 128,
          "compile": False}
    raw = {"name": "agree-e2e", "dataset": {"beir": str(scifact_dir),
                                             "sample": {"queries": 4, "seed": 0}},
           "first_stage": {"bm25": {}, "depth": 10}, "depths": [10],
           "metrics": ["ndcg@10"], "latency": {"queries": 0}, "sanity_check": False,
           "cache": {"enabled": False},
           "rerankers": [{"name": "fp32", "dtype": "float32", "batch_size": 16, **ce},
                         {"name": "fp32-b3", "dtype": "float32", "batch_size": 3, **ce}]}
    run_experiment(parse_config(raw, base_dir=tmp_path), out_dir=tmp_path / "out")
    code = main(["agree", str(tmp_path / "out"), "--format", "json", "--min-tau", "0.999",
                 "--max-metric-delta", "0.001"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out["failures"]
    (pair,) = out["pairs"]
    assert pair["pairs"] == 40 and pair["scale"] == "identity"
    assert pair["max_abs_delta"] < 1e-4
    # The run recorded the same figures itself (the two declare one model), and its report and
    # compare show them.
    recorded = read_results(tmp_path / "out" / "results.json").agreement
    assert [(p.a, p.b) for p in recorded] == [("fp32", "fp32-b3")]
    assert recorded[0].tau_per_query == pair["tau_per_query"]
    assert recorded[0].max_abs_delta == pair["max_abs_delta"]
    assert [m.metric for m in recorded[0].metrics] == ["ndcg@10"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Agreement across backends (same model)" in report
    assert "fp32-b3 vs fp32" in report
    assert main(["compare", str(tmp_path / "out"), "--format", "md"]) == 0
    compared = capsys.readouterr().out
    assert "## Agreement across backends (same model)" in compared
    assert "fp32-b3 vs fp32" in compared

