"""Hybrid first stage: fusion through ranx, checked against ranx.fuse called directly."""

from __future__ import annotations

from pathlib import Path

import pytest
from ranx import Run as RanxRun
from ranx import fuse
from rerank_eval.datasets import Dataset
from rerank_eval.first_stage import Hybrid
from rerank_eval.runs import Run, order_by_score, write_trec_run

CORPUS = {f"d{i}": f"passage {i}" for i in range(12)}
QUERIES = {"q1": "first", "q2": "second", "q3": "third"}
# Raw component scores; q3 is answered by the first component only.
SPARSE = {"q1": {"d1": 12.0, "d2": 9.5, "d3": 7.0, "d4": 3.0, "d5": 1.0},
          "q2": {"d6": 4.0, "d7": 3.0, "d8": 2.0, "d1": 1.5},
          "q3": {"d9": 2.0, "d10": 1.0}}
DENSE = {"q1": {"d3": 0.91, "d6": 0.88, "d1": 0.80, "d7": 0.75, "d2": 0.70},
         "q2": {"d8": 0.66, "d1": 0.60, "d0": 0.58, "d6": 0.40}}


def dataset() -> Dataset:
    return Dataset("toy", CORPUS, QUERIES, {q: {"d1": 1} for q in QUERIES})


def hybrid(tmp_path: Path, **params) -> Hybrid:
    """Two run-file components (raw scores kept in the saved files for score-based fusion)."""
    paths = []
    for name, scores in (("sparse", SPARSE), ("dense", DENSE)):
        path = tmp_path / f"{name}.trec"
        with open(path, "w") as f:
            for q, docs in scores.items():
                for rank, d in enumerate(order_by_score(docs), 1):
                    f.write(f"{q} Q0 {d} {rank} {docs[d]} {name}\n")
        paths.append(path)
    return Hybrid({"of": [{"run": str(paths[0])}, {"run": str(paths[1])}], **params},
                  base_dir=tmp_path)


def ranx_direct(runs: list[dict], method: str, norm: str | None, params: dict) -> dict:
    return fuse([RanxRun(r) for r in runs], norm=norm, method=method, params=params).to_dict()


def rank_scores(scores: dict) -> dict:
    """What a rank-based method sees: each component's order as strictly decreasing scores."""
    return {q: {d: float(len(s) - i) for i, d in enumerate(order_by_score(s))}
            for q, s in scores.items()}


def test_rrf_equals_ranx_fuse_called_directly(tmp_path) -> None:
    run = hybrid(tmp_path, method="rrf", params={"k": 60}).retrieve(dataset(), depth=100)
    both = ["q1", "q2"]
    expected = ranx_direct([{q: rank_scores(SPARSE)[q] for q in both},
                            {q: rank_scores(DENSE)[q] for q in both}], "rrf", None, {"k": 60})
    for q in both:
        assert run.scores[q] == pytest.approx(expected[q])
        assert run.ranking[q] == order_by_score(expected[q])
    assert run.ranking["q3"] == ["d9", "d10"]  # one component alone keeps its order


@pytest.mark.parametrize("method,norm,params", [
    ("combsum", "min-max", {}),
    ("combmnz", "max", {}),
    ("wsum", "min-max", {"weights": [0.3, 0.7]}),
])
def test_score_based_methods_equal_ranx_fuse(tmp_path, method, norm, params) -> None:
    run = hybrid(tmp_path, method=method, norm=norm, params=params).retrieve(dataset(), 100)
    ranx_method = {"combsum": "sum", "combmnz": "mnz"}.get(method, method)
    both = ["q1", "q2"]
    expected = ranx_direct([{q: SPARSE[q] for q in both}, {q: DENSE[q] for q in both}],
                           ranx_method, norm, params)
    for q in both:
        assert run.scores[q] == pytest.approx(expected[q])
        assert run.ranking[q] == order_by_score(expected[q])


def test_fused_ties_follow_the_tie_rule_and_depth_cuts(tmp_path) -> None:
    # Components retrieve top-3 (sparse d1 d2 d3, dense d3 d6 d1). d1 and d3 tie on RRF
    # (ranks 1+3 and 3+1), as do d2 and d6 (rank 2 in one component): doc id descending.
    wide = hybrid(tmp_path, method="rrf", component_depth=3).retrieve(dataset(), depth=4)
    assert wide.ranking["q1"] == ["d3", "d1", "d6", "d2"]
    assert wide.scores["q1"]["d1"] == wide.scores["q1"]["d3"]
    assert wide.scores["q1"]["d2"] == wide.scores["q1"]["d6"]
    run = hybrid(tmp_path, method="rrf").retrieve(dataset(), depth=3)
    assert run.ranking["q1"] == ["d3", "d1", "d6"]
    assert all(len(docs) <= 3 for docs in run.ranking.values())


def test_describe_records_method_params_and_components(tmp_path) -> None:
    stage = hybrid(tmp_path, method="RRF", params={"k": 10})
    info = stage.describe()
    assert info["fusion"] == "ranx.fuse"
    assert (info["method"], info["params"], info["norm"]) == ("rrf", {"k": 10}, None)
    assert [c["kind"] for c in info["components"]] == ["run", "run"]
    assert stage.name == "hybrid-rrf"


def test_component_depth_limits_what_each_component_contributes(tmp_path) -> None:
    run = hybrid(tmp_path, method="rrf", component_depth=1).retrieve(dataset(), depth=10)
    assert set(run.ranking["q1"]) == {"d1", "d3"}


def test_bm25_component_runs_inside_a_hybrid(tmp_path) -> None:
    ds = Dataset("words", {"a": "red apples and pears", "b": "green pears", "c": "blue sky"},
                 {"q": "red apples"}, {"q": {"a": 1}})
    path = tmp_path / "other.trec"
    write_trec_run(Run.from_scores("x", {"q": {"c": 2.0, "a": 1.0}}), path)
    stage = Hybrid({"of": [{"bm25": {}}, {"run": str(path)}]}, base_dir=tmp_path)
    run = stage.retrieve(ds, depth=3)
    assert run.ranking["q"][0] == "a"
    assert stage.query_searcher(ds, 3) is None  # a run file cannot answer live queries
