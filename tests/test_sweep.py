"""Sweeps: a ``datasets:`` config runs every (dataset, reranker) cell; each cell's results equal
the equivalent single-dataset experiment's, finished cells are on disk, the merged report lists
every cell, and bad sweep configs fail with one line naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from rerank_eval.cli import main
from rerank_eval.config import ExperimentConfig, SweepConfig, parse_config
from rerank_eval.errors import InputError
from rerank_eval.results import Sweep, read_sweep, strip_measurements
from rerank_eval.runner import run_experiment, run_sweep

SHARED_KEYS = {"first_stage": {"bm25": {}, "depth": 5}, "depths": [3, 5],
               "metrics": ["ndcg@5", "recall@5"], "latency": {"queries": 0},
               "sanity_check": False}


def _rerankers(tiny_cross_encoder: Path) -> list[dict]:
    return [{"name": "tiny", "kind": "cross-encoder", "model": str(tiny_cross_encoder)},
            {"name": "bi", "kind": "bi-encoder", "model": "packaged:all-minilm-l6-v2"}]


@pytest.fixture(scope="module")
def sweep_raw(shared_data, tiny_cross_encoder) -> dict:
    return {"name": "sw", **SHARED_KEYS, "rerankers": _rerankers(tiny_cross_encoder),
            "datasets": [
                {"beir": str(shared_data / "med"), "sample": {"queries": 4, "seed": 0}},
                {"name": "cran", "beir": str(shared_data / "cranfield"),
                 "sample": {"queries": 4, "seed": 1}}]}


@pytest.fixture(scope="module")
def sweep(sweep_raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    # A cache of its own: module fixtures run before the per-test isolated cache exists.
    raw = {**sweep_raw, "cache": {"path": str(out / "cache" / "scores.sqlite")}}
    config = parse_config(raw, base_dir=Path.cwd())
    assert isinstance(config, SweepConfig)
    return run_sweep(config, out_dir=out), out


def test_every_cell_has_a_results_json_equal_to_the_single_dataset_run(sweep, sweep_raw,
                                                                       tmp_path):
    result, out = sweep
    for entry, name in zip(sweep_raw["datasets"], ["med", "cran"]):
        single_raw = {**{k: v for k, v in sweep_raw.items() if k != "datasets"},
                      "name": f"single-{name}", "cache": {"enabled": False},
                      "dataset": {k: v for k, v in entry.items() if k != "name"}}
        single = parse_config(single_raw, base_dir=Path.cwd())
        assert isinstance(single, ExperimentConfig)
        run_experiment(single, out_dir=tmp_path / name)
        expected = json.loads((tmp_path / name / "results.json").read_text())
        for rr in expected["rerankers"]:
            cell_dir = out / name / rr["name"]
            cell = json.loads((cell_dir / "results.json").read_text())
            assert [r["name"] for r in cell["rerankers"]] == [rr["name"]]
            assert cell["rerankers"][0]["metrics"] == rr["metrics"]
            assert cell["first_stage"]["metrics"] == expected["first_stage"]["metrics"]
            assert cell["dataset"]["id"] == expected["dataset"]["id"]
            assert cell["rerankers"][0]["pairs_scored"] == rr["pairs_scored"] == 20
            scores = f"{rr['name']}.scores.tsv"
            assert ((cell_dir / "runs" / scores).read_text()
                    == (tmp_path / name / "runs" / scores).read_text())
            assert (cell_dir / "runs" / "first_stage.trec").is_file()


def test_sweep_json_and_report_list_every_cell(sweep):
    result, out = sweep
    data = read_sweep(out)
    cells = {(c.dataset, c.reranker) for c in data.cells}
    assert cells == {("med", "tiny"), ("med", "bi"), ("cran", "tiny"), ("cran", "bi")}
    assert [d["name"] for d in data.config["datasets"]] == ["med", "cran"]
    for c in data.cells:
        cell = json.loads((out / c.results).read_text())
        assert c.metrics == cell["rerankers"][0]["metrics"]
        assert c.pairs_scored == 20 and c.pairs_from_cache == 0
        assert c.scoring_s is not None and c.scoring_s > 0
    report = (out / "report.md").read_text()
    table = report.split("## Sweep: dataset x reranker")[1].split("##")[0]
    for dataset, reranker in cells:
        assert any(f"| {dataset} | {reranker} |" in line for line in table.splitlines())
    assert (out / "report.html").is_file()


def test_sweep_json_keeps_the_layout_of_the_untyped_writer(sweep):
    """sweep.json, now written from rerank_eval.results.Sweep, is the text the former
    dict-building writer produced: rebuilt here from the cells' results.json files, the
    hardware and the resolved config, key for key and in its order."""
    result, out = sweep
    cells = []
    for cell in result.cells:  # run order
        path = cell.reports_dir / "results.json"
        data = json.loads(path.read_text())
        fs, rr = data["first_stage"], data["rerankers"][0]
        cells.append({
            "dataset": path.parent.parent.name, "dataset_id": data["dataset"]["id"],
            "reranker": rr["name"], "kind": rr["kind"], "model": rr["model"],
            "results": str(path.relative_to(out)),
            "first_stage": {"name": fs["name"], "depth": fs["depth"], "metrics": fs["metrics"]},
            "metrics": rr["metrics"], "pairs_scored": rr["pairs_scored"],
            "pairs_from_cache": rr["pairs_from_cache"], "scoring_s": rr["scoring_s"],
            "recommended_depth": rr["recommended_depth"]})
    assert [c["dataset"] for c in cells] == ["med", "cran", "med", "cran"]
    former = {"schema_version": 1, "name": "sw", "hardware": result.hardware,
              "config": result.config.resolved(), "cells": cells}
    assert (out / "sweep.json").read_text() == json.dumps(former, indent=2) + "\n"


def test_sweep_json_measurements_are_declared(sweep):
    _, out = sweep
    data = json.loads((out / "sweep.json").read_text())
    kept = strip_measurements(data, Sweep)
    assert "hardware" not in kept and all("scoring_s" not in c for c in kept["cells"])
    assert kept["cells"][0]["metrics"] == data["cells"][0]["metrics"]


@pytest.mark.parametrize("text, message", [
    ("{", "invalid JSON"),
    ('{"schema_version": 7}', "schema_version 1"),
    ('{"schema_version": 1, "name": "x", "cells": [{"dataset": 1}]}', "cells[0].dataset: "),
])
def test_a_bad_sweep_json_is_one_line_naming_the_file(text, message, tmp_path):
    (tmp_path / "sweep.json").write_text(text)
    with pytest.raises(InputError) as err:
        read_sweep(tmp_path)
    assert message in str(err.value) and "sweep.json" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_second_sweep_through_the_cli_reads_every_score_from_the_shared_cache(
        sweep, sweep_raw, tmp_path, capsys):
    _, first_out = sweep
    raw = {**sweep_raw, "cache": {"path": str(first_out / "cache" / "scores.sqlite")}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--out", str(tmp_path / "again"), "--quiet"]) == 0
    first = json.loads((first_out / "sweep.json").read_text())["cells"]
    second = json.loads((tmp_path / "again" / "sweep.json").read_text())["cells"]
    assert [c["metrics"] for c in second] == [c["metrics"] for c in first]
    assert [c["pairs_scored"] for c in second] == [0, 0, 0, 0]
    assert [c["pairs_from_cache"] for c in second] == [20, 20, 20, 20]
    assert "med" in capsys.readouterr().out  # the dataset x reranker table


@pytest.mark.parametrize("change, message", [
    ({"dataset": {"bundled": "quickstart"}}, "datasets: give either dataset"),
    ({"datasets": [{"bundled": "quickstart"}, {"bundled": "quickstart"}]},
     "datasets[1].name: duplicate dataset name 'quickstart'"),
    ({"datasets": [{"bundled": "quickstart", "first_stage": {"bm26": {}}}]},
     "datasets[0].first_stage: unknown key 'bm26'"),
    ({"datasets": [{"bundled": "quickstart", "first_stage": {"bm25": {"k": 1}}}]},
     "datasets[0].first_stage.bm25: unknown key 'k'"),
    ({"datasets": [{"bundled": "quickstart", "splitt": "test"}]},
     "datasets[0]: unknown key 'splitt'"),
    ({"datasets": [{"name": "a b", "bundled": "quickstart"}]}, "datasets[0].name:"),
    ({"datasets": []}, "datasets: expected a non-empty list"),
    ({"datasets": [{"bundled": "quickstart", "first_stage": {"bm25": {}, "depth": 4}}]},
     "depths: 5 exceeds datasets[0].first_stage.depth 4"),
])
def test_bad_sweep_configs_fail_with_one_line_naming_the_field(change, message):
    raw = {"name": "sw", **SHARED_KEYS, "datasets": [{"bundled": "quickstart"}], **change}
    with pytest.raises(InputError) as err:
        parse_config(raw, base_dir=Path.cwd())
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_dataset_without_any_first_stage_is_named():
    raw = {"name": "sw", "datasets": [{"bundled": "quickstart"}]}
    with pytest.raises(InputError, match=r"datasets\[0\]\.first_stage: required"):
        parse_config(raw, base_dir=Path.cwd())


def test_per_dataset_first_stage_overrides_the_top_level_one():
    raw = {"name": "sw", **SHARED_KEYS, "rerankers": [
        {"name": "bi", "kind": "bi-encoder", "model": "packaged:all-minilm-l6-v2"}], "datasets": [
        {"name": "a", "bundled": "quickstart"},
        {"name": "b", "bundled": "quickstart", "first_stage": {"bm25": {"k1": 1.2}, "depth": 20}}]}
    config = parse_config(raw, base_dir=Path.cwd())
    assert isinstance(config, SweepConfig)
    a, b = config.experiments
    assert (a.name, a.first_stage.params.k1, a.first_stage.depth) == ("sw-a", 0.9, 5)
    assert (b.name, b.first_stage.params.k1, b.first_stage.depth) == ("sw-b", 1.2, 20)
    assert a.rerankers is b.rerankers and a.executor is b.executor


def test_example_sweep_config_resolves_its_paths(shared_data):
    from rerank_eval.config import load_config

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "sweep-example.yaml")
    assert isinstance(config, SweepConfig)
    assert [e.dataset.name for e in config.experiments] == ["scifact", "cranfield"]
    for exp in config.experiments:
        assert (exp.base_dir / exp.dataset.spec / "corpus.jsonl").is_file()
