"""results.json as a typed model (rerank_eval.results): schema_version 1 files still read and
report, measurements are the fields the model declares as such, a run that fails half way
leaves status: partial naming what is missing, and what the runner writes is the model."""

from __future__ import annotations

import csv
import json
import typing
from typing import Annotated

import pytest
from pydantic import BaseModel
from rerank_eval.cli import main
from rerank_eval.config import parse_config
from rerank_eval.errors import InputError
from rerank_eval.rerankers.cross_encoder import CrossEncoder
from rerank_eval.results import (
    MEASUREMENT,
    RerankerEntry,
    Results,
    measurement_fields,
    parse_results,
    read_results,
    results_json,
    strip_measurements,
)
from rerank_eval.runner import run_experiment

# A results.json as rerank-eval wrote it before the model (schema_version 1, no status).
V1 = {
    "schema_version": 1, "rerank_eval_version": "0.1.0", "name": "old-run",
    "hardware": {"id": "hw-0123456789", "cpu_model": "Old CPU", "cores": 4, "threads_used": 4,
                 "gpu_model": None, "gpu_count": 0, "id_rule": "hw- + sha256"},
    "config": {"name": "old-run", "dataset": {"beir": "x"}, "depths": [5, 10],
               "metrics": ["ndcg@10"], "relevance_threshold": 1,
               "latency": {"queries": 3, "warmup": 1, "seed": 0},
               "recommendation": {"metric": "ndcg@10", "tolerance": 0.005}},
    "dataset": {"id": "toy", "queries": 2, "documents": 10, "qrels": 3, "notes": []},
    "first_stage": {"name": "bm25", "depth": 10, "params": {"kind": "bm25"},
                    "metrics": {"ndcg@10": 0.5}, "queries_evaluated": 2,
                    "queries_without_results": 0,
                    "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 2.0, "mean": 1.2,
                                   "queries": 3},
                    "recall_curve": {"1": 0.2, "10": 0.8}},
    "rerankers": [{
        "name": "old-ce", "kind": "cross-encoder", "model": "m",
        "metrics": {"5": {"ndcg@10": 0.55}, "10": {"ndcg@10": 0.6}},
        "pairs_scored": 20, "pairs_from_cache": 0, "pairs_truncated": 1,
        "description": {"batch_size": 32}, "scoring_s": 0.5,
        "executor": {"kind": "local", "threads": 4},
        "audit": {"5": {"k": 5, "dropped": 0, "rescued": 1, "net": 1}},
        "throughput": {"pairs_per_s": 40.0, "queries_per_s": 4.0, "pairs": 20, "queries": 2,
                       "seconds": 0.5, "batch_size": 32, "dtype": "float32", "device": "cpu",
                       "threads": 4},
        "latency_where": "this process",
        "latency_ms": {"5": {"p50": 3.0, "p95": 4.0, "p99": 4.0, "mean": 3.1, "queries": 3,
                             "pairs_per_query": 5.0},
                       "10": {"p50": 6.0, "p95": 7.0, "p99": 7.0, "mean": 6.1, "queries": 3,
                              "pairs_per_query": 10.0}},
        "output_cut": {"10": {"ndcg@3": 0.4}},
        "recommended_depth": 10,
        "recommendation": {"depth": 10, "metric": "ndcg@10", "tolerance": 0.005,
                           "quality": 0.6, "best_depth": 10, "best_quality": 0.6,
                           "latency_budget_ms": None, "latency_stat": "p95",
                           "latency_ms": 7.0, "reasoning": ["best ndcg@10 at depth 10."]},
        "a_field_from_the_future": {"kept": True},
    }],
    "conventions": {"tie_order": "score desc, doc id desc", "relevance_threshold": 1},
    "timings_s": {"load_dataset_s": 0.1},
    "runs_dir": "runs/old-run",
}


def test_a_schema_version_1_file_is_read_and_reported(tmp_path, capsys):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.json").write_text(json.dumps(V1), encoding="utf-8")
    results = read_results(tmp_path / "old")
    assert (results.schema_version, results.status, results.missing) == (2, "complete", [])
    entry = results.reranker("old-ce")
    assert entry.latency_ms["10"].p95 == 7.0 and entry.recommendation.depth == 10
    assert entry.model_extra == {"a_field_from_the_future": {"kept": True}}  # read, kept
    assert results.source == str(tmp_path / "old" / "results.json")

    assert main(["report", str(tmp_path / "old"), "--out", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert "old-ce" in md and "hw-0123456789" in md and "0.6000" in md
    # Written back: declared fields only, and the writer refuses an undeclared one.
    assert "a_field_from_the_future" not in results.model_dump(mode="json")["rerankers"][0]
    with pytest.raises(ValueError, match=r"rerankers\[0\]\.a_field_from_the_future is not "):
        results_json(results)
    capsys.readouterr()


@pytest.mark.parametrize("text, message", [
    ('{"schema_version": 2,\n  "first_stage": }', "results.json:2: invalid JSON"),
    ('{"schema_version": 3, "first_stage": {}, "rerankers": []}',
     "schema_version 3 is not one this rerank-eval reads (1, 2)"),
    ('{"schema_version": 2, "first_stage": {"name": "bm25", "depth": 10}, '
     '"rerankers": [{"name": "x", "latency_ms": {"10": {"p50": "fast"}}}]}',
     "results.json: rerankers[0].latency_ms.10.p50: Input should be a valid number"),
    ('{"schema_version": 2, "status": "half", "first_stage": {"name": "b", "depth": 1}, '
     '"rerankers": []}', "results.json: status: Input should be 'complete' or 'partial'"),
    ("[]", "not a rerank-eval results.json"),
])
def test_a_bad_results_file_is_one_line_naming_it(tmp_path, text, message):
    path = tmp_path / "results.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as e:
        read_results(path)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith(str(path))


def _paths(value, where=""):
    """Every key path of a JSON tree, list items as ``[]`` and mappings keyed by data (depths,
    hardware ids) as ``*``, the notation of measurement_fields()."""
    out = set()
    if isinstance(value, dict):
        for k, v in value.items():
            key = "*" if k[:1].isdigit() or k.startswith("hw-") else k
            path = f"{where}.{key}" if where else key
            out |= {path} | _paths(v, path)
    elif isinstance(value, list):
        for v in value:
            out |= _paths(v, where + "[]")
    return out


def test_strip_measurements_removes_exactly_the_declared_measurement_fields():
    full = parse_results(V1).model_dump(mode="json")
    stripped = strip_measurements(full)
    removed = _paths(full) - _paths(stripped)
    declared = set(measurement_fields())
    # Every removed path is a declared measurement or lies below one, and every declared
    # measurement present in the file was removed.
    assert all(any(p == d or p.startswith(d + ".") or p.startswith(d + "[")
                   for d in declared) for p in removed)
    assert {p for p in _paths(full) if p in declared} <= removed
    assert "rerankers[].recommendation.reasoning" in removed
    assert stripped["rerankers"][0]["recommendation"]["depth"] == 10  # not a measurement
    assert stripped["config"]["latency"] == V1["config"]["latency"]  # settings stay

    # Declaring a new measurement in the model is all it takes: no list to update.
    class Entry(RerankerEntry):
        warm_start_ms: Annotated[float | None, MEASUREMENT] = None

    class Results2(Results):
        rerankers: list[Entry] = []

    full["rerankers"][0]["warm_start_ms"] = 12.5
    assert "warm_start_ms" in strip_measurements(full)["rerankers"][0]  # unknown to Results
    assert "warm_start_ms" not in strip_measurements(full, Results2)["rerankers"][0]
    assert "rerankers[].warm_start_ms" in measurement_fields(Results2)


def test_every_seconds_field_is_a_measurement():
    """The old rule stripped every key ending in _s; the model keeps it by declaration."""
    measured = {m.replace("[]", "").replace(".*", "") for m in measurement_fields()}
    seconds = [p for p in _all_fields(Results) if p.endswith("_s")]
    assert "rerankers.scoring_s" in seconds and "timings_s" in seconds
    for path in seconds:
        assert any(path == m or path.startswith(m + ".") for m in measured), path


def _all_fields(model, where=""):
    """Every declared field of ``model`` and its parts, as paths."""
    out = []
    for name, info in model.model_fields.items():
        path = f"{where}.{name}" if where else name
        out.append(path)
        for part in _models_in(info.annotation):
            out += _all_fields(part, path)
    return out


def _models_in(tp):
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for arg in typing.get_args(tp) for m in _models_in(arg)]


def _two_rerankers(tmp_path, tiny_cross_encoder):
    return parse_config({
        "name": "two", "dataset": {"bundled": "quickstart"},
        "first_stage": {"bm25": {}, "depth": 10},
        "rerankers": [{"name": name, "kind": "cross-encoder", "model": str(tiny_cross_encoder),
                       "max_length": 64} for name in ("first", "second")],
        "depths": [5, 10], "metrics": ["ndcg@10"], "sanity_check": False,
        "latency": {"queries": 2, "warmup": 1}, "cache": {"enabled": False},
    }, base_dir=tmp_path)


def test_a_run_failing_on_its_second_reranker_leaves_a_partial_results_json(
        tmp_path, tiny_cross_encoder, monkeypatch):
    real_score = CrossEncoder.score

    def score(self, pairs):
        if self.name == "second":
            raise RuntimeError("the GPU fell off")
        return real_score(self, pairs)

    monkeypatch.setattr(CrossEncoder, "score", score)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="fell off"):
        run_experiment(_two_rerankers(tmp_path, tiny_cross_encoder), out_dir=out)
    results = read_results(out)
    assert (results.status, results.missing) == ("partial", ["second"])
    assert results.reranker_names() == ["first"]
    first = results.reranker("first")
    assert set(first.metrics) == {"5", "10"} and first.pairs_scored > 0
    assert first.recommendation is not None and first.latency_ms["10"].queries == 2
    with open(out / "per_query.csv", encoding="utf-8", newline="") as f:
        systems = {row["system"] for row in csv.DictReader(f)}
    assert systems == {"bm25", "first"}
    # What is on disk is the model, byte for byte.
    assert results_json(results) == (out / "results.json").read_text(encoding="utf-8")

    monkeypatch.setattr(CrossEncoder, "score", real_score)
    run_experiment(_two_rerankers(tmp_path, tiny_cross_encoder), out_dir=out)
    done = read_results(out)
    assert (done.status, done.missing, done.reranker_names()) == ("complete", [],
                                                                  ["first", "second"])
    written = (out / "results.json").read_text(encoding="utf-8")
    assert results_json(done) == written
    assert json.loads(written)["schema_version"] == 2


def test_a_run_stopped_in_its_first_reranker_names_every_reranker_missing(
        tmp_path, tiny_cross_encoder, monkeypatch):
    def score(self, pairs):
        raise KeyboardInterrupt

    monkeypatch.setattr(CrossEncoder, "score", score)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(_two_rerankers(tmp_path, tiny_cross_encoder), out_dir=tmp_path / "o")
    results = read_results(tmp_path / "o")
    assert (results.status, results.missing, results.rerankers) == (
        "partial", ["first", "second"], [])
    assert results.first_stage.metrics["ndcg@10"] > 0
