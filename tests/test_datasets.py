"""Datasets load through real loaders into one shape: corpus, judged queries, qrels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from rerank_eval.datasets import load_dataset
from rerank_eval.errors import InputError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    full_env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "eval"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "rerank_eval", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd, timeout=600)


def test_beir_folder_gives_published_scifact_counts(scifact_dir):
    ds = load_dataset("beir", str(scifact_dir), split="test")
    assert ds.summary() == {"id": "beir:scifact/test", "queries": 300, "documents": 5183,
                            "qrels": 339}
    train = load_dataset("beir", str(scifact_dir), split="train")
    assert (len(train.queries), sum(len(j) for j in train.qrels.values())) == (809, 919)


def test_document_text_is_title_then_text(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        json.dumps({"_id": "d1", "title": "Title", "text": "Body."}) + "\n"
        + json.dumps({"_id": "d2", "title": "", "text": "Only body."}) + "\n")
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "x"}) + "\n"
                                            + json.dumps({"_id": "q2", "text": "unjudged"}) + "\n")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    ds = load_dataset("beir", str(tmp_path))
    assert ds.corpus == {"d1": "Title Body.", "d2": "Only body."}
    assert list(ds.queries) == ["q1"], "only judged queries of the split are evaluated"


def test_trec_files_load_msmarco_style_tsv_and_trec_qrels(tmp_path):
    (tmp_path / "queries.tsv").write_text("1\tcapital of france\n2\tunjudged\n")
    (tmp_path / "collection.tsv").write_text("10\tParis is the capital.\n11\tBananas.\n")
    (tmp_path / "qrels.txt").write_text("1 0 10 2\n1 0 11 0\n")
    ds = load_dataset("trec", {"queries": "queries.tsv", "qrels": "qrels.txt",
                               "corpus": "collection.tsv"}, base_dir=tmp_path)
    assert ds.queries == {"1": "capital of france"}
    assert ds.qrels == {"1": {"10": 2, "11": 0}}
    assert ds.corpus["10"] == "Paris is the capital."


def test_sampling_is_seeded_and_restricted_to_judged_queries(scifact_dir):
    ds = load_dataset("beir", str(scifact_dir))
    a, b = ds.sample_queries(50, seed=1), ds.sample_queries(50, seed=1)
    assert list(a.queries) == list(b.queries) and len(a.queries) == 50
    assert set(a.qrels) == set(a.queries)
    assert list(ds.sample_queries(50, seed=2).queries) != list(a.queries)


def test_bundled_quickstart_collection_is_complete():
    ds = load_dataset("bundled", "quickstart")
    assert len(ds.queries) >= 30 and len(ds.corpus) >= 250
    assert all(max(j.values()) >= 2 for j in ds.qrels.values())


@pytest.mark.parametrize("content, expected", [
    ("query-id\tcorpus-id\tscore\nq1\td1\n", "qrels.tsv:2: expected"),
    ("q1\td1\thigh\n", "qrels.tsv:1: relevance must be an integer"),
    ("q1 0 d1 1\nq1 0 d1 2\n", "qrels.tsv:2: conflicting judgments"),
])
def test_malformed_qrels_name_file_and_line(tmp_path, content, expected):
    path = tmp_path / "qrels.tsv"
    path.write_text(content)
    from rerank_eval.datasets.formats import read_qrels

    with pytest.raises(InputError) as err:
        read_qrels(path)
    assert expected in str(err.value)


def test_ir_datasets_loads_cranfield_offline_from_a_prepared_home(tmp_path, shared_data):
    home = tmp_path / "irds"
    (home / "cranfield").mkdir(parents=True)
    (home / "cranfield" / "cran.tar.gz").write_bytes(
        (shared_data / "cranfield" / "source" / "cran.tar.gz").read_bytes())
    config = tmp_path / "c.yaml"
    config.write_text("name: cran\ndataset: {irds: cranfield}\n"
                      "first_stage: {bm25: {}, depth: 100}\nmetrics: [ndcg@10]\n")
    proc = _cli("run", str(config), "--out", str(tmp_path / "out"),
                env={"IR_DATASETS_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["dataset"]["documents"] == 1400
    assert results["dataset"]["queries"] == 225 and results["dataset"]["qrels"] == 1837


def test_ir_datasets_loads_beir_scifact_offline_from_a_zip(tmp_path, scifact_dir):
    home = tmp_path / "irds"
    (home / "beir" / "scifact").mkdir(parents=True)
    with zipfile.ZipFile(home / "beir" / "scifact" / "source.zip", "w") as z:
        for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv", "qrels/train.tsv"):
            z.write(scifact_dir / name, f"scifact/{name}")
    code = ("from rerank_eval.datasets import load_dataset; "
            "print(load_dataset('irds', 'beir/scifact/test').summary())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "IR_DATASETS_HOME": str(home),
                               "PYTHONPATH": str(PROJECT_ROOT / "eval")}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "'queries': 300, 'documents': 5183, 'qrels': 339" in proc.stdout


def test_unreachable_ir_datasets_download_says_how_to_work_offline(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("name: x\ndataset: {irds: beir/scifact/test}\n"
                      "first_stage: {bm25: {}, depth: 10}\n")
    proc = _cli("run", str(config), "--out", str(tmp_path / "out"),
                env={"IR_DATASETS_HOME": str(tmp_path / "empty-home")})
    assert proc.returncode == 2
    # ir_datasets narrates its download attempts; our error is one line of its own.
    errors = [line for line in proc.stderr.splitlines() if line.startswith("rerank-eval: error")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "IR_DATASETS_HOME" in errors[0] and "beir/scifact/test" in errors[0]
