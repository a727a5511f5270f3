"""compare and gate refuse results whose conventions differ (dataset, query sample, relevance
threshold, first stage, depths, tie order) unless ``--allow-mismatch FIELD`` says so, and
record what was allowed; gate writes JUnit on exit 2 too, gates two rerankers of one file
(``FILE:NAME``) and judges the baseline's recommended depth by default."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest
from _results_factory import write_results
from rerank_eval.cli import main
from rerank_eval.compare.gate import load_rules
from rerank_eval.config import load_config

QIDS = [f"q{i:02d}" for i in range(30)]
CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# What a run writes for each convention (config section, conventions), and a changed value.
BASE_CONFIG = {"dataset": {"bundled": "quickstart", "split": "test", "sample": None},
               "first_stage": {"bm25": {}, "depth": 100}, "depths": [10, 20],
               "relevance_threshold": 1}
TIE = "score descending, ties by doc id descending (trec_eval order)"
CHANGES = {
    "dataset": ("toy", "other", lambda r: r["dataset"].update(id="other")),
    "query_sample": ("all judged queries", "20 queries, seed 1",
                     lambda r: r["config"]["dataset"].update(sample={"queries": 20, "seed": 1})),
    "relevance_threshold": ("1", "2", lambda r: r["config"].update(relevance_threshold=2)),
    "first_stage": ('"depth": 100', '"depth": 50',
                    lambda r: r["config"]["first_stage"].update(depth=50)),
    "depths": ("[10, 20]", "[10, 20, 50]", lambda r: r["config"].update(depths=[10, 20, 50])),
    "tie_order": (TIE, "score descending, ties by doc id ascending",
                  lambda r: r["conventions"].update(
                      tie_order="score descending, ties by doc id ascending")),
}


def _values(name: str, shift: float) -> dict[str, float]:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    vals = np.clip(np.linspace(0.2, 0.8, len(QIDS)) + shift
                   + 0.003 * rng.standard_normal(len(QIDS)), 0, 1)
    return {q: float(v) for q, v in zip(QIDS, vals)}


def _side(tmp_path: Path, name: str, shift: float = 0.0, change=None,
          rerankers: dict | None = None, recommended: int | None = None) -> Path:
    """A results.json as a run writes it (config sections and conventions filled in)."""
    per_q = _values(name, shift)
    path = write_results(tmp_path / name, name=name,
                         first_stage={"ndcg@10": {q: 0.4 for q in QIDS}},
                         rerankers=rerankers or {"ce": {10: {"ndcg@10": per_q},
                                                        20: {"ndcg@10": per_q}}})
    data = json.loads(path.read_text())
    data["config"].update(json.loads(json.dumps(BASE_CONFIG)))
    data["conventions"]["tie_order"] = TIE
    if recommended is not None:
        for entry in data["rerankers"]:
            entry["recommended_depth"] = recommended
    if change is not None:
        change(data)
    path.write_text(json.dumps(data))
    return path


def _gate(base, cand, *extra, rules=("--metric", "ndcg@10", "--max-drop", "0.01")):
    return main(["gate", "--baseline", str(base), "--candidate", str(cand), *rules, *extra])


@pytest.mark.parametrize("field", list(CHANGES))
def test_gate_and_compare_refuse_each_convention_difference_naming_it(tmp_path, capsys, field):
    before, after, change = CHANGES[field]
    base = _side(tmp_path, "base")
    cand = _side(tmp_path, "cand", change=change)
    assert _gate(base, cand) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"baseline and candidate differ in {field}: " in err and before in err and after in err
    assert main(["compare", str(base), str(cand), "--format", "json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"base and cand differ in {field}: " in err


def test_allow_mismatch_overrides_and_is_recorded_in_summary_and_junit(tmp_path, capsys):
    base = _side(tmp_path, "base")
    cand = _side(tmp_path, "cand", change=CHANGES["relevance_threshold"][2])
    junit = tmp_path / "gate.xml"
    assert _gate(base, cand, "--allow-mismatch", "relevance_threshold",
                 "--junit", str(junit)) == 0
    out = capsys.readouterr().out
    line = "allowed mismatch: baseline and candidate differ in relevance_threshold: 1 vs 2"
    assert f"NOTE  {line}" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert [p.get("value") for p in suite.find("properties")] == [line]
    # Allowing another field does not let this one through.
    assert _gate(base, cand, "--allow-mismatch", "depths") == 2
    assert "differ in relevance_threshold: 1 vs 2" in capsys.readouterr().err


def test_compare_records_what_was_allowed_in_every_format(tmp_path, capsys):
    base = _side(tmp_path, "base")
    cand = _side(tmp_path, "cand", 0.05, change=CHANGES["depths"][2])
    args = ["compare", str(base), str(cand), "--allow-mismatch", "depths",
            "--permutations", "50", "--bootstrap", "50"]
    line = "allowed mismatch: base and cand differ in depths: [10, 20] vs [10, 20, 50]"
    assert main([*args, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["settings"]["allowed_mismatches"] == [line]
    assert main([*args, "--format", "table"]) == 0
    assert f"NOTE: {line}" in capsys.readouterr().out
    assert main([*args, "--format", "md"]) == 0
    assert "Note:" in capsys.readouterr().out
    assert main([*args, "--format", "html"]) == 0
    assert "allowed mismatch: base and cand differ in depths" in capsys.readouterr().out


def test_unknown_allow_mismatch_field_is_an_input_error(tmp_path, capsys):
    base = _side(tmp_path, "base")
    assert _gate(base, base, "--allow-mismatch", "threshold") == 2
    err = capsys.readouterr().err
    assert "--allow-mismatch: unknown field 'threshold'" in err and "relevance_threshold" in err


def test_results_without_recorded_conventions_still_compare(tmp_path):
    """A field one side does not record (an older file) is not compared."""
    base = _side(tmp_path, "base")
    old = _side(tmp_path, "old", change=lambda r: r.update(config={}, conventions={}))
    assert _gate(base, old) == 0


def test_junit_is_written_on_exit_2_with_the_error(tmp_path, capsys):
    base = _side(tmp_path, "base")
    cand = _side(tmp_path, "cand", change=CHANGES["query_sample"][2])
    junit = tmp_path / "gate.xml"
    assert _gate(base, cand, "--junit", str(junit)) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    root = ET.parse(junit).getroot()
    assert root.get("errors") == "1"
    error = root.find("testsuite/testcase/error")
    assert error is not None and "differ in query_sample" in error.get("message")
    assert error.get("message") in err
    # A missing candidate file is bad input too.
    junit.unlink()
    assert _gate(base, tmp_path / "nope", "--junit", str(junit)) == 2
    assert "results file not found" in ET.parse(junit).getroot().find(
        "testsuite/testcase/error").get("message")


def test_two_rerankers_of_one_results_file_are_gated_with_file_colon_name(tmp_path, capsys):
    good, worse = _values("good", 0.0), _values("worse", -0.05)
    both = _side(tmp_path, "both", rerankers={"good": {10: {"ndcg@10": good}},
                                              "worse": {10: {"ndcg@10": worse}}})
    assert _gate(f"{both}:good", f"{both}:worse") == 1
    out = capsys.readouterr().out
    assert "FAIL  ndcg@10 at depth 10 (good -> worse)" in out
    assert _gate(f"{both}:worse", f"{both.parent}:good") == 0
    assert "PASS  ndcg@10 at depth 10 (worse -> good)" in capsys.readouterr().out
    assert _gate(f"{both}:nope", f"{both}:good") == 2
    assert "--baseline: no reranker 'nope'" in capsys.readouterr().err


def test_default_depth_is_the_baselines_recommended_depth(tmp_path, capsys):
    base = _side(tmp_path, "base", recommended=10)
    cand = _side(tmp_path, "cand")
    assert _gate(base, cand) == 0
    assert "ndcg@10 at depth 10 (ce)" in capsys.readouterr().out
    # Without a recommendation: the largest depth both evaluated.
    plain = _side(tmp_path, "plain")
    assert _gate(plain, cand) == 0
    assert "ndcg@10 at depth 20 (ce)" in capsys.readouterr().out


def test_the_gate_examples_in_configs_are_valid_and_share_conventions():
    rules, test = load_rules(CONFIGS / "gate-rules.yaml")
    assert test == "t-test" and len(rules) == 3
    base = load_config(CONFIGS / "gate-baseline.yaml").resolved()
    cand = load_config(CONFIGS / "gate-candidate.yaml").resolved()
    for key in ("dataset", "first_stage", "depths", "relevance_threshold"):
        assert base[key] == cand[key], key
    assert [r["name"] for r in base["rerankers"]] == [r["name"] for r in cand["rerankers"]]
    assert base["rerankers"] != cand["rerankers"]
