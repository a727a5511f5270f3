"""Edge cases of real collections, each with one defined behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rerank_eval.cli import main
from rerank_eval.datasets import load_dataset
from rerank_eval.datasets.formats import read_beir_corpus, read_qrels, read_tsv_pairs
from rerank_eval.errors import InputError
from rerank_eval.metrics import evaluate_ranking, parse_metrics
from rerank_eval.runs import read_trec_run

MOJIBAKE = "cafÃ© â€œdÃ©jÃ  vuâ€\x9d Ã¼ber"  # UTF-8 read as cp1252, as in the DL slices


def _write_collection(folder: Path, corpus: list[dict], queries: list[dict],
                      qrels: list[tuple[str, str, int]]) -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps(d) + "\n" for d in corpus), encoding="utf-8")
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{r}\n" for q, d, r in qrels),
        encoding="utf-8")
    return folder


@pytest.fixture()
def edge_experiment(tmp_path, tiny_cross_encoder, monkeypatch):
    """A collection holding the edge cases, a run file as first stage, and a config."""
    monkeypatch.setenv("RERANK_EVAL_CACHE", str(tmp_path / "cache.sqlite"))
    long_passage = ("protein " * 12_500)[:100_000]
    corpus = [
        {"_id": "d1", "title": "Insulin", "text": "insulin regulates blood glucose"},
        {"_id": "d2", "title": "", "text": ""},  # empty passage
        {"_id": "d3", "text": long_passage},  # 100k characters
        {"_id": "d4", "text": MOJIBAKE},
        {"_id": "d5", "text": "vitamin d and bone density"},
    ]
    queries = [
        {"_id": "q1", "text": "insulin and glucose"},
        {"_id": "q2", "text": ""},  # empty query
        {"_id": "q3", "text": "vitamin d"},  # only non-relevant judgments
        {"_id": "q4", "text": MOJIBAKE},
    ]
    qrels = [("q1", "d1", 1), ("q2", "d5", 1), ("q3", "d5", 0), ("q4", "d4", 2)]
    data = _write_collection(tmp_path / "edge", corpus, queries, qrels)
    run = tmp_path / "first.trec"
    run.write_text(
        "q1 Q0 d1 1 5 bm25\nq1 Q0 d2 2 4 bm25\nq1 Q0 d3 3 3 bm25\nq1 Q0 d4 4 2 bm25\n"
        "q1 Q0 d5 5 1 bm25\n"
        "q2 Q0 d5 1 2 bm25\nq2 Q0 d2 2 1 bm25\n"  # empty query, 2 candidates < depth
        "q3 Q0 d3 1 1 bm25\n"  # a single candidate
        "q4 Q0 d4 1 2 bm25\nq4 Q0 d1 2 1 bm25\n", encoding="utf-8")
    config = tmp_path / "edge.yaml"
    config.write_text(
        f"name: edge\ndataset: {{beir: {data}}}\nfirst_stage: {{run: {run}, depth: 4}}\n"
        f"rerankers:\n  - {{name: tiny, kind: cross-encoder, model: {tiny_cross_encoder},"
        " max_length: 128}\n"
        "depths: [2, 4]\nmetrics: [ndcg@10, mrr@10, recall@4]\nsanity_check: false\n",
        encoding="utf-8")
    return config, tmp_path


def _scores(path: Path) -> dict[tuple[str, str], float]:
    rows = path.read_text(encoding="utf-8").splitlines()[1:]
    return {(q, d): float(s) for q, d, s in (r.split("\t") for r in rows)}


def test_edge_cases_run_end_to_end_with_defined_results(edge_experiment):
    config, tmp = edge_experiment
    assert main(["run", str(config), "--out", str(tmp / "a"), "--quiet"]) == 0
    results = json.loads((tmp / "a/results.json").read_text(encoding="utf-8"))
    entry = results["rerankers"][0]
    # Fewer candidates than the depth: only what the run has is scored (4 + 2 + 1 + 2).
    assert entry["pairs_scored"] == 9
    # The 100k-character passage (candidate of q1 and q3) is truncated and counted, twice.
    assert entry["pairs_truncated"] == 2
    scores = _scores(tmp / "a/runs/tiny.scores.tsv")
    assert set(scores) == {("q1", "d1"), ("q1", "d2"), ("q1", "d3"), ("q1", "d4"),
                           ("q2", "d5"), ("q2", "d2"), ("q3", "d3"), ("q4", "d4"), ("q4", "d1")}
    # Empty query, empty passage and mojibake are scored like any pair: finite numbers.
    assert all(s == s and abs(s) < 1e6 for s in scores.values())
    # A query with only non-relevant judgments is evaluated and scores 0 (trec_eval -c).
    per_query = (tmp / "a/per_query.csv").read_text(encoding="utf-8").splitlines()
    q3 = [line for line in per_query if ",q3," in line]
    assert q3 and all(line.endswith(",0.0") for line in q3)
    assert results["first_stage"]["queries_evaluated"] == 4
    # The short query keeps its 2 candidates at depth 4.
    trec = (tmp / "a/runs/tiny.depth4.trec").read_text(encoding="utf-8").splitlines()
    assert [line.split()[2] for line in trec if line.startswith("q2 ")] in (["d5", "d2"],
                                                                            ["d2", "d5"])

    # The rerun reads all 9 pairs, truncation flags included, from the cache.
    assert main(["run", str(config), "--out", str(tmp / "b"), "--quiet"]) == 0
    rerun = json.loads((tmp / "b/results.json").read_text(encoding="utf-8"))["rerankers"][0]
    assert (rerun["pairs_scored"], rerun["pairs_from_cache"], rerun["pairs_truncated"]) == (0, 9, 2)
    assert _scores(tmp / "b/runs/tiny.scores.tsv") == scores


def test_a_query_without_relevant_documents_counts_as_zero_in_the_mean():
    qrels = {"a": {"d1": 1}, "b": {"d2": 0}}
    ranking = {"a": ["d1"], "b": ["d2"]}
    ev = evaluate_ranking(ranking, qrels, parse_metrics(["ndcg@10", "mrr@10"]), 1)
    assert ev.per_query["ndcg@10"]["b"] == 0.0
    assert ev.means["ndcg@10"] == pytest.approx(0.5)


def test_mojibake_is_read_as_is_not_repaired(tmp_path):
    folder = _write_collection(tmp_path / "m", [{"_id": "d", "text": MOJIBAKE}],
                               [{"_id": "q", "text": MOJIBAKE}], [("q", "d", 1)])
    ds = load_dataset("beir", str(folder), split="test", base_dir=tmp_path)
    assert ds.corpus["d"] == MOJIBAKE and ds.queries["q"] == MOJIBAKE


def test_mojibake_in_the_dl19_slice_is_kept(dl19_dir):
    corpus = read_beir_corpus(dl19_dir / "corpus.jsonl")
    # UTF-8 decoded as Latin-1 upstream ("â\x80¦" for "…"): kept byte for byte, not repaired.
    assert sum("\u00e2\u0080" in text for text in corpus.values()) > 100


@pytest.mark.parametrize("reader, content", [
    (read_beir_corpus, b'{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": "caf\xe9"}\n'),
    (read_qrels, b"q1\td1\t1\nq\xff\td2\t1\n"),
    (read_trec_run, b"q1 Q0 d1 1 1.0 t\nq1 Q0 d\xc3 2 0.5 t\n"),
    (lambda p: read_tsv_pairs(p, "doc"), b"d1\tok\nd2\t\x80\n"),
])
def test_non_utf8_bytes_are_an_error_naming_the_line(tmp_path, reader, content):
    path = tmp_path / "input"
    path.write_bytes(content)
    with pytest.raises(InputError, match="not valid UTF-8") as err:
        reader(path)
    assert str(err.value).startswith(f"{path}:2: ")


def test_duplicate_ids_are_errors_naming_the_line(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n')
    with pytest.raises(InputError, match=r"corpus.jsonl:2: duplicate document id 'd1'"):
        read_beir_corpus(corpus)
    run = tmp_path / "run.trec"
    run.write_text("q Q0 d1 1 2 t\nq Q0 d1 2 1 t\n")
    with pytest.raises(InputError, match=r"run.trec:2: doc 'd1' appears twice for query 'q'"):
        read_trec_run(run)
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("q\td1\t1\nq\td1\t1\n")  # a repeated, identical judgment is harmless
    assert read_qrels(qrels) == {"q": {"d1": 1}}
    qrels.write_text("q\td1\t1\nq\td1\t2\n")
    with pytest.raises(InputError, match=r"qrels.tsv:2: conflicting judgments"):
        read_qrels(qrels)


def test_bm25_gives_an_empty_query_no_candidates(tmp_path):
    from rerank_eval.first_stage import FIRST_STAGES

    folder = _write_collection(tmp_path / "e", [{"_id": "d1", "text": "insulin"}],
                               [{"_id": "q1", "text": "insulin"}, {"_id": "q2", "text": ""}],
                               [("q1", "d1", 1), ("q2", "d1", 1)])
    ds = load_dataset("beir", str(folder), split="test", base_dir=tmp_path)
    run = FIRST_STAGES["bm25"]({}, base_dir=tmp_path).retrieve(ds, 10)
    assert run.ranking["q1"] == ["d1"] and run.ranking["q2"] == []
