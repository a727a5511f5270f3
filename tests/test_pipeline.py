"""End to end: config -> dataset -> first stage -> rerankers at each depth -> results on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import pytrec_eval
from rerank_eval.config import LatencyConfig, load_config
from rerank_eval.runner import run_experiment
from rerank_eval.runs import read_trec_run, rerank_at_depth

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_reranking_reorders_only_the_top_d_and_keeps_first_stage_order_below():
    first = {"q": ["a", "b", "c", "d", "e"]}
    model = {"q": {"a": 0.1, "b": 0.9, "c": 0.5, "d": 5.0, "e": 9.0}}
    assert rerank_at_depth(first, model, 3, "x").ranking["q"] == ["b", "c", "a", "d", "e"]
    assert rerank_at_depth(first, model, 5, "x").ranking["q"] == ["e", "d", "b", "c", "a"]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    config = load_config(PROJECT_ROOT / "configs" / "quickstart.yaml")
    config.latency = LatencyConfig(queries=5, warmup=1)  # keep the suite fast; tested elsewhere
    result = run_experiment(config, out_dir=out)
    return out, result


def test_quickstart_writes_the_results_contract(quickstart):
    out, _ = quickstart
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == 2 and results["name"] == "quickstart"
    assert results["status"] == "complete" and results["missing"] == []
    assert set(results["dataset"]) >= {"id", "queries", "documents", "qrels"}
    assert set(results["first_stage"]) >= {"name", "depth", "metrics"}
    depths = results["config"]["depths"]
    for rr in results["rerankers"]:
        assert set(rr) >= {"name", "kind", "model", "metrics", "pairs_scored", "pairs_truncated"}
        assert sorted(rr["metrics"], key=int) == [str(d) for d in depths]
        shortlist = read_trec_run(out / "runs" / "first_stage.trec").ranking
        assert rr["pairs_scored"] == sum(min(max(depths), len(d)) for d in shortlist.values())
    conventions = results["conventions"]
    assert "trec_eval" in conventions["tie_order"] and conventions["relevance_threshold"] == 2
    per_query = pd.read_csv(out / "per_query.csv", dtype={"query_id": str})
    assert set(per_query.columns) == {"system", "stage", "depth", "query_id", "metric", "value"}
    for name in ["first_stage.trec"] + [f"{rr['name']}.depth{d}.trec"
                                        for rr in results["rerankers"] for d in depths]:
        assert (out / "runs" / name).is_file(), name


def test_saved_runs_reproduce_the_reported_metrics_under_trec_eval(quickstart):
    out, result = quickstart
    qrels = result.dataset.qrels
    run = read_trec_run(out / "runs" / "minilm-bi.depth10.trec")
    trec_run = {q: {d: float(len(docs) - i) for i, d in enumerate(docs)}
                for q, docs in run.ranking.items()}
    per_q = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(trec_run)
    expected = sum(per_q[q]["ndcg_cut_10"] if q in per_q else 0.0 for q in qrels) / len(qrels)
    reported = json.loads((out / "results.json").read_text())["rerankers"][0]["metrics"]["10"]
    assert reported["ndcg@10"] == pytest.approx(expected, abs=1e-6)


def test_quickstart_bi_encoder_beats_bm25_where_a_neural_reranker_matters(quickstart):
    _, result = quickstart
    bm25 = result.first_stage.evaluations[None].means["ndcg@10"]
    bi = next(s for s in result.rerankers if s.name == "minilm-bi")
    assert bi.evaluations[20].means["ndcg@10"] > bm25 + 0.1


def test_untrained_cross_encoder_head_is_reported(quickstart):
    out, result = quickstart
    ce = next(s for s in result.rerankers if s.name == "minilm-ce-untrained")
    assert ce.info.description["head_untrained"] is True
    # it fails its sanity probes: flagged on top of the report, and no recommendation
    assert ce.info.sanity is not None and ce.info.sanity.failed
    assert ce.info.recommended_depth is None and ce.info.recommendation.action == "none"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "minilm-ce-untrained FAILS its sanity probes" in html
    assert html.index("Warnings") < html.index("Recommendation: which depth")


def test_first_stage_only_config_evaluates_bm25(tmp_path, scifact_dir):
    config = tmp_path / "c.yaml"
    config.write_text(f"name: sf\ndataset: {{beir: {scifact_dir}, split: test}}\n"
                      "first_stage: {bm25: {}, depth: 100}\nrerankers: []\n"
                      "metrics: [ndcg@10, recall@100]\n")
    result = run_experiment(load_config(config), out_dir=tmp_path / "out")
    means = result.first_stage.evaluations[None].means
    assert 0.665 <= means["ndcg@10"] <= 0.679, "published Lucene BM25 range on SciFact"
    assert 0.90 <= means["recall@100"] <= 0.93


def test_cross_encoder_reranking_on_real_data_matches_trec_eval(tmp_path, scifact_dir,
                                                                scifact_ce):
    config = tmp_path / "c.yaml"
    config.write_text(
        f"name: sf\ndataset: {{beir: {scifact_dir}, sample: {{queries: 40, seed: 0}}}}\n"
        "first_stage: {bm25: {}, depth: 10}\n"
        f"rerankers: [{{name: ce, kind: cross-encoder, model: {scifact_ce}, max_length: 256}}]\n"
        "depths: [5, 10]\nmetrics: [ndcg@10, recall@10]\nlatency: {queries: 0}\n")
    result = run_experiment(load_config(config), out_dir=tmp_path / "out")
    stage = result.rerankers[0]
    assert stage.info.pairs_scored == sum(len(d) for d in
                                             read_trec_run(tmp_path / "out" / "runs" /
                                                           "first_stage.trec").ranking.values())
    run = read_trec_run(tmp_path / "out" / "runs" / "ce.depth10.trec")
    trec_run = {q: {d: float(len(docs) - i) for i, d in enumerate(docs)}
                for q, docs in run.ranking.items()}
    per_q = pytrec_eval.RelevanceEvaluator(result.dataset.qrels, {"ndcg_cut.10"}).evaluate(trec_run)
    expected = sum(per_q[q]["ndcg_cut_10"] for q in result.dataset.qrels) / 40
    assert stage.evaluations[10].means["ndcg@10"] == pytest.approx(expected, abs=1e-6)
    # Reranking within the top 10 cannot change recall@10.
    assert stage.evaluations[10].means["recall@10"] == pytest.approx(
        result.first_stage.evaluations[None].means["recall@10"])


@pytest.mark.slow
def test_scifact_cross_encoder_beats_bm25_at_depth_10(tmp_path, scifact_dir, scifact_ce):
    """All 300 SciFact test queries (3,000 pairs): model card 0.6762 -> 0.6901."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"name: sf\ndataset: {{beir: {scifact_dir}}}\nfirst_stage: {{bm25: {{}}, depth: 10}}\n"
        f"rerankers: [{{name: ce, kind: cross-encoder, model: {scifact_ce}, max_length: 256}}]\n"
        "depths: [10]\nmetrics: [ndcg@10]\n")
    result = run_experiment(load_config(config), out_dir=tmp_path / "out")
    bm25 = result.first_stage.evaluations[None].means["ndcg@10"]
    assert result.rerankers[0].evaluations[10].means["ndcg@10"] > bm25 + 0.005


def _cli(*args: str, cwd: Path):
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "eval")}
    return subprocess.run([sys.executable, "-m", "rerank_eval", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=600)


def _assert_one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("rerank-eval: error:")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0]


def _beir(tmp_path: Path, qrels: str) -> Path:
    folder = tmp_path / "data"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "title": "", "text": "paris"}\n'
                                         '{"_id": "d2", "title": "", "text": "rome"}\n')
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "paris"}\n')
    (folder / "qrels" / "test.tsv").write_text(qrels)
    return folder


def test_cli_bad_inputs_are_one_line_errors_naming_file_and_line(tmp_path):
    _beir(tmp_path, "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\n")
    (tmp_path / "c.yaml").write_text("name: x\ndataset: {beir: data}\n"
                                     "first_stage: {bm25: {}, depth: 10}\n")
    _assert_one_line_error(_cli("run", "c.yaml", "--out", "out", cwd=tmp_path),
                           "data/qrels/test.tsv:3:")


def test_cli_run_naming_unknown_queries_is_an_error(tmp_path):
    _beir(tmp_path, "q1\td1\t1\n")
    (tmp_path / "run.trec").write_text("q1 Q0 d1 1 2.0 x\nq9 Q0 d2 1 1.0 x\n")
    (tmp_path / "c.yaml").write_text("name: x\ndataset: {beir: data}\n"
                                     "first_stage: {run: run.trec, depth: 10}\n")
    _assert_one_line_error(_cli("run", "c.yaml", "--out", "out", cwd=tmp_path),
                           "run.trec", "'q9'")


def test_cli_unknown_config_key_names_the_field(tmp_path):
    _beir(tmp_path, "q1\td1\t1\n")
    (tmp_path / "c.yaml").write_text("name: x\ndataset: {beir: data}\n"
                                     "first_stage: {bm25: {k1: 1.2, bee: 0.3}, depth: 10}\n")
    _assert_one_line_error(_cli("run", "c.yaml", cwd=tmp_path), "c.yaml",
                           "first_stage.bm25: unknown key 'bee'")


def test_cli_missing_model_path_fails_before_any_work(tmp_path):
    _beir(tmp_path, "q1\td1\t1\n")
    (tmp_path / "c.yaml").write_text(
        "name: x\ndataset: {beir: data}\nfirst_stage: {bm25: {}, depth: 10}\n"
        "rerankers: [{name: ce, kind: cross-encoder, model: ./models/missing}]\n")
    proc = _cli("run", "c.yaml", "--out", "out", cwd=tmp_path)
    _assert_one_line_error(proc, "rerankers[ce].model: model path not found")
    assert not (tmp_path / "out").exists()
