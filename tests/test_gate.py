"""`rerank-eval gate`: exit 0 pass, 1 regression, 2 bad input; verdicts per rule; JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zlib

import numpy as np
import pytest
from _results_factory import write_results
from rerank_eval.cli import main

QIDS = [f"q{i:02d}" for i in range(40)]
HW = {"id": "cpu-x86-2c", "cores": 2}


def _side(tmp_path, name, shift, noise=0.003, **kw):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    base = np.linspace(0.2, 0.8, len(QIDS))
    vals = np.clip(base + shift + noise * rng.standard_normal(len(QIDS)), 0, 1)
    per_q = {q: float(v) for q, v in zip(QIDS, vals)}
    return write_results(tmp_path / name, name=name,
                         first_stage={"ndcg@10": {q: 0.4 for q in QIDS}},
                         rerankers={"ce": {10: {"ndcg@10": per_q}, 20: {"ndcg@10": per_q}}},
                         **kw)


def _gate(base, cand, *rules, junit=None):
    args = ["gate", "--baseline", str(base), "--candidate", str(cand), *rules]
    return main(args + (["--junit", str(junit)] if junit else []))


def test_better_candidate_passes_and_worse_fails(tmp_path, capsys):
    old = _side(tmp_path, "old", 0.0)
    new = _side(tmp_path, "new", 0.05)
    assert _gate(old, new, "--metric", "ndcg@10", "--max-drop", "0.01") == 0
    assert "PASS  ndcg@10 at depth 20 (ce)" in capsys.readouterr().out
    assert _gate(new, old, "--metric", "ndcg@10", "--max-drop", "0.01") == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "REGRESSION" in out and "gate: FAILED" in out


def test_drop_within_the_allowance_passes(tmp_path):
    old = _side(tmp_path, "old", 0.0)
    new = _side(tmp_path, "new", -0.005)
    assert _gate(old, new, "--metric", "ndcg@10", "--max-drop", "0.01") == 0
    assert _gate(old, new, "--metric", "ndcg@10", "--max-drop", "0.001") == 1


def test_with_alpha_a_noisy_drop_is_not_a_regression_but_a_consistent_one_is(tmp_path, capsys):
    old = _side(tmp_path, "old", 0.0)
    noisy = _side(tmp_path, "noisy", -0.02, noise=0.3)
    steady = _side(tmp_path, "steady", -0.02)
    assert _gate(old, noisy, "--metric", "ndcg@10", "--max-drop", "0.01",
                 "--alpha", "0.05") == 0
    assert "not significant" in capsys.readouterr().out
    assert _gate(old, steady, "--metric", "ndcg@10", "--max-drop", "0.01",
                 "--alpha", "0.05") == 1
    assert "significant (t-test p=" in capsys.readouterr().out


def test_rules_repeat_per_metric_and_depth(tmp_path, capsys):
    old = _side(tmp_path, "old", 0.0)
    new = _side(tmp_path, "new", -0.02)
    code = _gate(old, new, "--metric", "ndcg@10", "--max-drop", "0.05", "--depth", "10",
                 "--metric", "ndcg@10", "--max-drop", "0.01", "--depth", "20")
    out = capsys.readouterr().out
    assert code == 1
    assert "PASS  ndcg@10 at depth 10" in out and "FAIL  ndcg@10 at depth 20" in out


def test_junit_xml_has_one_testcase_per_rule(tmp_path):
    old = _side(tmp_path, "old", 0.0, hardware=HW, latency_ms={"ce": {20: {"p95": 10.0}}})
    new = _side(tmp_path, "new", -0.02, hardware=HW, latency_ms={"ce": {20: {"p95": 11.0}}})
    junit = tmp_path / "gate.xml"
    assert _gate(old, new, "--metric", "ndcg@10", "--max-drop", "0.1", "--metric", "ndcg@10",
                 "--max-drop", "0.001", "--max-p95-ratio", "1.2", junit=junit) == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "0")
    cases = suite.findall("testcase")
    assert [c.find("failure") is not None for c in cases] == [False, True, False]
    assert "REGRESSION" in cases[1].find("failure").get("message")
    assert "latency p95" in cases[2].get("name")


def test_latency_rule_applies_only_on_the_same_hardware(tmp_path, capsys):
    lat = {"ce": {20: {"p50": 5.0, "p95": 10.0, "p99": 12.0, "mean": 6.0, "queries": 40}}}
    slow = {"ce": {20: {"p50": 9.0, "p95": 15.0, "p99": 20.0, "mean": 9.0, "queries": 40}}}
    old = _side(tmp_path, "old", 0.0, hardware=HW, latency_ms=lat)
    new = _side(tmp_path, "new", 0.0, hardware=HW, latency_ms=slow)
    elsewhere = _side(tmp_path, "gpu", 0.0, hardware={"id": "h100"}, latency_ms=slow)
    bare = _side(tmp_path, "bare", 0.0)
    assert _gate(old, new, "--max-p95-ratio", "1.2") == 1
    assert "x1.500" in capsys.readouterr().out
    assert _gate(old, new, "--max-p95-ratio", "1.6") == 0
    capsys.readouterr()
    junit = tmp_path / "na.xml"
    assert _gate(old, elsewhere, "--max-p95-ratio", "1.2", junit=junit) == 0
    assert "not applicable: measured on different hardware" in capsys.readouterr().out
    assert ET.parse(junit).getroot().find("testsuite/testcase/skipped") is not None
    assert _gate(old, bare, "--max-p95-ratio", "1.2") == 0
    assert "not applicable: no latency/hardware in results" in capsys.readouterr().out


def test_rules_from_yaml(tmp_path, capsys):
    old = _side(tmp_path, "old", 0.0)
    new = _side(tmp_path, "new", -0.02)
    rules = tmp_path / "rules.yaml"
    rules.write_text("reranker: ce\nrules:\n  - {metric: ndcg@10, max_drop: 0.05, depth: 10}\n"
                     "  - {metric: ndcg@10, max_drop: 0.01, alpha: 0.05}\n"
                     "  - {max_p95_ratio: 1.25}\n")
    assert main(["gate", "--baseline", str(old), "--candidate", str(new),
                 "--rules", str(rules)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[:3]] == ["PASS", "FAIL", "N/A"]


@pytest.mark.parametrize("rules, message", [
    (["--max-drop", "0.01"], "--max-drop must follow the --metric"),
    (["--metric", "ndcg@10"], "needs --max-drop"),
    (["--metric", "ndcg@10", "--max-drop", "0.1", "--max-drop", "0.2"], "given twice"),
    (["--metric", "mrr@10", "--max-drop", "0.1"], "has no 'mrr@10'"),
    (["--metric", "ndcg@10", "--max-drop", "0.1", "--depth", "50"], "--depth 50"),
    (["--metric", "ndcg@10", "--max-drop", "0.1", "--reranker", "x"], "no reranker 'x'"),
    (["--metric", "ndcg@10", "--max-drop", "0.1", "--alpha", "2"], "between 0 and 1"),
    (["--metric", "ndcg@10", "--max-drop", "nan"], "--max-drop: expected a finite number, got nan"),
    (["--metric", "ndcg@10", "--max-drop", "-0.1"], "--max-drop: must be >= 0, got -0.1"),
    (["--max-p95-ratio", "inf"], "--max-p95-ratio: expected a finite number, got inf"),
    ([], "no rules"),
])
def test_usage_errors_exit_2_with_one_line(tmp_path, capsys, rules, message):
    old = _side(tmp_path, "old", 0.0)
    new = _side(tmp_path, "new", 0.0)
    assert _gate(old, new, *rules) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_different_datasets_and_missing_files_are_input_errors(tmp_path, capsys):
    old = _side(tmp_path, "old", 0.0)
    other = _side(tmp_path, "other", 0.0, dataset_id="cisi")
    assert _gate(old, other, "--metric", "ndcg@10", "--max-drop", "0.1") == 2
    assert "differ in dataset: toy vs cisi" in capsys.readouterr().err
    assert _gate(old, tmp_path / "nope" / "results.json", "--metric", "ndcg@10",
                 "--max-drop", "0.1") == 2
    assert "results file not found" in capsys.readouterr().err


def test_several_rerankers_need_a_name(tmp_path, capsys):
    per_q = {q: 0.5 for q in QIDS}
    two = write_results(tmp_path / "two", first_stage={"ndcg@10": per_q},
                        rerankers={"a": {10: {"ndcg@10": per_q}}, "b": {10: {"ndcg@10": per_q}}})
    assert _gate(two, two, "--metric", "ndcg@10", "--max-drop", "0") == 2
    assert "choose one with --reranker" in capsys.readouterr().err
    assert _gate(two, two, "--reranker", "b", "--metric", "ndcg@10", "--max-drop", "0") == 0


@pytest.mark.parametrize("text, message", [
    ("rules:\n  - {metric: ndcg@10, max_drop: 0.05}\n  - {metric: ndcg@10, max_drop: .nan}\n",
     ":3: rules[1].max_drop: expected a finite number, got nan"),
    ("rules:\n  - metric: ndcg@10\n    max_dorp: 0.1\n",
     ":3: rules[0]: unknown key 'max_dorp' (did you mean 'max_drop'?)"),
    ("rules:\n  - {max_p95_ratio: 1.2}\nrules: []\n",
     ":3: invalid YAML: duplicate key 'rules' (first on line 1)"),
    ("depth: 0\nrules:\n  - {max_p95_ratio: 1.2}\n",
     ":1: depth: must be a positive integer, got 0"),
])
def test_bad_rules_files_name_the_line_and_field(tmp_path, capsys, text, message):
    old = _side(tmp_path, "old", 0.0)
    rules = tmp_path / "rules.yaml"
    rules.write_text(text)
    assert main(["gate", "--baseline", str(old), "--candidate", str(old),
                 "--rules", str(rules)]) == 2
    assert capsys.readouterr().err == f"rerank-eval: error: {rules}{message}\n"
