"""Dense first stage: exact retrieval with the packaged MiniLM, and the corpus-embedding cache."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from rerank_eval.datasets import Dataset
from rerank_eval.first_stage import Dense
from rerank_eval.first_stage.embedding_cache import CACHE_ENV, default_cache_dir

TOPICS = {
    "cat": "Cats are small domesticated felines that purr and hunt mice.",
    "rust": "Iron rusts when it reacts with oxygen and water, forming iron oxide.",
    "volcano": "A volcano erupts when magma rises through the crust and escapes as lava.",
    "insulin": "Insulin is a hormone made by the pancreas that lowers blood glucose.",
    "tides": "Ocean tides are caused mainly by the gravitational pull of the moon.",
}
FILLER = [f"Meeting minutes {i}: the committee discussed budget item number {i}."
          for i in range(15)]


def tiny_dataset(extra_text: str = "") -> Dataset:
    corpus = {f"doc-{k}": v + extra_text for k, v in TOPICS.items()}
    corpus.update({f"filler-{i}": t for i, t in enumerate(FILLER)})
    queries = {"q-cat": "which pet animal purrs?", "q-rust": "why does iron corrode?",
               "q-tides": "what causes the tides in the sea?"}
    qrels = {q: {f"doc-{q[2:]}": 1} for q in queries}
    return Dataset("tiny", corpus, queries, qrels)


@pytest.fixture(scope="module")
def minilm():
    """The packaged all-MiniLM-L6-v2, loaded once for the module."""
    stage = Dense({"model": "packaged:all-minilm-l6-v2", "cache": False}, base_dir=Path.cwd())
    return stage.model


def make_stage(minilm, tmp_path: Path, **params) -> Dense:
    stage = Dense({"model": "packaged:all-minilm-l6-v2", "cache_dir": str(tmp_path / "emb"),
                   **params}, base_dir=tmp_path)
    stage._model = minilm  # share the loaded weights across instances (test speed only)
    return stage


def test_retrieves_the_topical_passage_first(minilm, tmp_path) -> None:
    run = make_stage(minilm, tmp_path).retrieve(tiny_dataset(), depth=5)
    for q in ("q-cat", "q-rust", "q-tides"):
        assert run.ranking[q][0] == f"doc-{q[2:]}"
        assert len(run.ranking[q]) == 5


def test_scores_are_exact_cosines_in_tie_rule_order(minilm, tmp_path) -> None:
    ds = tiny_dataset()
    run = make_stage(minilm, tmp_path).retrieve(ds, depth=len(ds.corpus))
    doc_ids = list(ds.corpus)
    d = minilm.encode([ds.corpus[x] for x in doc_ids], normalize_embeddings=True)
    q = minilm.encode([ds.queries["q-rust"]], normalize_embeddings=True)[0]
    expected = dict(zip(doc_ids, (d @ q).tolist()))
    assert set(run.scores["q-rust"]) == set(doc_ids)
    for doc, score in run.scores["q-rust"].items():
        assert score == pytest.approx(expected[doc], abs=1e-5)
    ranked = run.ranking["q-rust"]
    assert all(run.scores["q-rust"][a] >= run.scores["q-rust"][b]
               for a, b in zip(ranked, ranked[1:]))


def test_second_run_reuses_cached_corpus_embeddings(minilm, tmp_path, monkeypatch,
                                                    caplog) -> None:
    caplog.set_level(logging.INFO, logger="rerank_eval")
    ds = tiny_dataset()
    first = make_stage(minilm, tmp_path)
    run1 = first.retrieve(ds, depth=10)
    assert first.cache_info["cache"] == "built"
    entries = list((tmp_path / "emb").iterdir())
    assert len(entries) == 1 and (entries[0] / "embeddings.npy").is_file()
    assert any(m.startswith("dense: embedded 20 documents in ") and "documents/s" in m
               for m in caplog.messages)

    caplog.clear()
    second = make_stage(minilm, tmp_path)

    def no_embedding(*_args, **_kwargs):
        raise AssertionError("the corpus was embedded again")

    monkeypatch.setattr(second, "_embed_into", no_embedding)
    run2 = second.retrieve(ds, depth=10)
    assert second.cache_info["cache"] == "reused"
    assert any("reused cached corpus embeddings" in line for line in caplog.messages)
    assert run2.ranking == run1.ranking


def test_changed_corpus_or_settings_miss_the_cache(minilm, tmp_path) -> None:
    make_stage(minilm, tmp_path).retrieve(tiny_dataset(), depth=3)
    changed_text = make_stage(minilm, tmp_path)
    changed_text.retrieve(tiny_dataset(extra_text=" (revised)"), depth=3)
    assert changed_text.cache_info["cache"] == "built"
    changed_len = make_stage(minilm, tmp_path, max_length=16)
    minilm_len = minilm.max_seq_length
    try:
        changed_len.retrieve(tiny_dataset(), depth=3)
    finally:
        minilm.max_seq_length = minilm_len
    assert changed_len.cache_info["cache"] == "built"
    assert changed_len.cache_info["passages_truncated"] > 0
    assert len(list((tmp_path / "emb").iterdir())) == 3


def test_a_damaged_cache_entry_is_rebuilt_not_trusted(minilm, tmp_path) -> None:
    ds = tiny_dataset()
    make_stage(minilm, tmp_path).retrieve(ds, depth=3)
    (entry,) = (tmp_path / "emb").iterdir()
    np.save(entry / "embeddings.npy", np.zeros((2, 384), dtype=np.float32))  # wrong shape
    again = make_stage(minilm, tmp_path)
    again.retrieve(ds, depth=3)
    assert again.cache_info["cache"] == "built"


def test_cache_location_follows_env_var(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "root"))
    assert default_cache_dir() == tmp_path / "root" / "embeddings"
    stage = Dense({"model": "packaged:all-minilm-l6-v2"}, base_dir=tmp_path)
    assert stage.cache_dir == tmp_path / "root" / "embeddings"
    relative = Dense({"model": "packaged:all-minilm-l6-v2", "cache_dir": "emb"},
                     base_dir=tmp_path)
    assert relative.cache_dir == tmp_path / "emb"


def test_single_query_searcher_for_latency(minilm, tmp_path) -> None:
    ds = tiny_dataset()
    stage = make_stage(minilm, tmp_path)
    stage.retrieve(ds, depth=5)
    searcher = stage.query_searcher(ds, depth=5)
    (result,) = searcher("which pet animal purrs?")
    assert next(iter(result)) == "doc-cat" and len(result) == 5


def test_an_interrupted_embedding_resumes_from_its_checkpoint(minilm, tmp_path, monkeypatch,
                                                              caplog) -> None:
    import rerank_eval.first_stage.dense as dense_module

    monkeypatch.setattr(dense_module, "EMBED_CHUNK", 8)
    ds = tiny_dataset()
    broken = make_stage(minilm, tmp_path)
    real_encode = broken.encode
    calls = []

    def encode_then_crash(texts):
        calls.append(len(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_encode(texts)

    monkeypatch.setattr(broken, "encode", encode_then_crash)
    with pytest.raises(KeyboardInterrupt):
        broken.retrieve(ds, depth=3)
    assert not [p for p in (tmp_path / "emb").iterdir() if not p.name.endswith(".partial")]

    caplog.set_level(logging.INFO, logger="rerank_eval")
    resumed = make_stage(minilm, tmp_path)
    resumed.retrieve(ds, depth=3)
    assert any("resuming an interrupted embedding at 8/20" in m for m in caplog.messages)
    (entry,) = (tmp_path / "emb").iterdir()
    cached = np.load(entry / "embeddings.npy")
    fresh = minilm.encode([ds.corpus[d] for d in ds.corpus], normalize_embeddings=True)
    assert np.allclose(cached, fresh, atol=1e-5)
