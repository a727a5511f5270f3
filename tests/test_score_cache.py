"""The score cache: a pair scored once by a model is never scored again by that model."""

from __future__ import annotations

import json
import math
import multiprocessing
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from rerank_eval.cli import main
from rerank_eval.config import load_config
from rerank_eval.datasets import load_dataset
from rerank_eval.errors import InputError
from rerank_eval.rerankers import build_reranker
from rerank_eval.runs import Run
from rerank_eval.scoring.cache import (
    ScoreCache,
    default_cache_path,
    fingerprint_hash,
    text_sha,
)
from rerank_eval.scoring.shortlist import score_shortlist
from synthetic import write_beir, write_config


@pytest.fixture()
def synth(tmp_path):
    folder = write_beir(tmp_path / "synth", queries=40, docs=120)
    return load_dataset("beir", str(folder), split="test", base_dir=tmp_path)


def _shortlist(dataset, depth: int) -> Run:
    docs = sorted(dataset.corpus)
    ranking = {q: docs[i % 7 : i % 7 + depth] for i, q in enumerate(sorted(dataset.queries))}
    return Run("hand", ranking, {q: {d: 0.0 for d in ds} for q, ds in ranking.items()})


def _reranker(model: Path, tmp_path: Path, **params):
    return build_reranker("tiny", "cross-encoder",
                          {"model": str(model), "max_length": 64, **params}, base_dir=tmp_path)


def test_scores_read_back_bit_identical_with_their_truncation_flag(tmp_path):
    values = [0.1 + 0.2, -1e-300, 3.141592653589793, 1e300, 0.0, 7.0, float("inf"),
              float("-inf"), 5e-324]
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        fp = cache.register("abc", {"kind": "x"})
        q = text_sha("query")
        rows = [(q, text_sha(f"p{i}"), v, i % 2 == 0) for i, v in enumerate(values)]
        cache.put(fp, rows)
        hits = cache.lookup(fp, q, [text_sha(f"p{i}") for i in range(len(values) + 3)])
    assert len(hits) == len(values)
    for i, v in enumerate(values):
        hit = hits[text_sha(f"p{i}")]
        assert hit.score.hex() == float(v).hex()
        assert hit.truncated == (i % 2 == 0)


def test_nan_scores_are_cached_as_nan(tmp_path):
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        fp = cache.register("abc", {"kind": "x"})
        cache.put(fp, [(b"q", b"p", float("nan"), None)])
        assert math.isnan(cache.lookup(fp, b"q", [b"p"])[b"p"].score)


def test_cache_file_uses_wal_journal(tmp_path):
    ScoreCache(tmp_path / "c.sqlite").close()
    db = sqlite3.connect(tmp_path / "c.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_default_location_is_env_var_then_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv("RERANK_EVAL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "rerank-eval" / "scores.sqlite"
    monkeypatch.setenv("RERANK_EVAL_CACHE", str(tmp_path / "mine.sqlite"))
    assert default_cache_path() == tmp_path / "mine.sqlite"
    monkeypatch.setenv("RERANK_EVAL_CACHE", str(tmp_path))  # a folder: the file goes in it
    assert default_cache_path() == tmp_path / "scores.sqlite"


def test_a_corrupt_cache_file_is_a_one_line_input_error(tmp_path):
    bad = tmp_path / "c.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(InputError, match="score cache unusable"):
        ScoreCache(bad)


def test_fingerprint_changes_exactly_when_the_score_can_change(tiny_cross_encoder, tmp_path):
    def fp(**params):
        params = {"dtype": "float32", **params}
        return fingerprint_hash(_reranker(tiny_cross_encoder, tmp_path, **params).fingerprint())

    base = fp()
    score_changing = [{"max_length": 32}, {"dtype": "bfloat16"}, {"score": "log_softmax"},
                      {"label_index": 0}]
    for params in score_changing:
        assert fp(**params) != base, params
    for params in [{"batch_size": 3}, {"device": "cpu"}, {"dtype": "fp32"},
                   {"max_tokens_per_batch": 512}, {"compile": False}]:
        assert fp(**params) == base, params


def test_fingerprint_hashes_weight_content_not_location(tiny_cross_encoder, tmp_path):
    base = fingerprint_hash(_reranker(tiny_cross_encoder, tmp_path).fingerprint())
    copy = shutil.copytree(tiny_cross_encoder, tmp_path / "copy")
    assert fingerprint_hash(_reranker(copy, tmp_path).fingerprint()) == base
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight; same size
    weights.write_bytes(bytes(data))
    assert fingerprint_hash(_reranker(copy, tmp_path).fingerprint()) != base


def test_second_pass_reads_every_score_from_the_cache(tiny_cross_encoder, tmp_path, synth):
    shortlist = _shortlist(synth, 10)
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        first = _reranker(tiny_cross_encoder, tmp_path)
        scores1 = score_shortlist(first, synth, shortlist, cache=cache, pairs_per_chunk=80)
        second = _reranker(tiny_cross_encoder, tmp_path)
        scores2 = score_shortlist(second, synth, shortlist, cache=cache, pairs_per_chunk=80)
    total = shortlist.num_pairs()
    assert (first.stats.pairs_scored, first.stats.pairs_from_cache) == (total, 0)
    assert (second.stats.pairs_scored, second.stats.pairs_from_cache) == (0, total)
    assert scores2 == scores1
    assert second.stats.pairs_truncated == first.stats.pairs_truncated


def test_a_deeper_shortlist_scores_only_the_new_pairs(tiny_cross_encoder, tmp_path, synth):
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        score_shortlist(_reranker(tiny_cross_encoder, tmp_path), synth, _shortlist(synth, 5),
                        cache=cache)
        deeper = _reranker(tiny_cross_encoder, tmp_path)
        cached = score_shortlist(deeper, synth, _shortlist(synth, 12), cache=cache)
    uncached = score_shortlist(_reranker(tiny_cross_encoder, tmp_path), synth,
                               _shortlist(synth, 12))
    n = len(synth.queries)
    assert deeper.stats.pairs_from_cache == 5 * n
    assert deeper.stats.pairs_scored == 7 * n
    for q in uncached:  # scores of pairs batched differently agree to float32 precision
        for d in uncached[q]:
            assert cached[q][d] == pytest.approx(uncached[q][d], abs=1e-5)


def test_a_different_model_setting_never_reads_another_settings_scores(
        tiny_cross_encoder, tmp_path, synth):
    shortlist = _shortlist(synth, 4)
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        score_shortlist(_reranker(tiny_cross_encoder, tmp_path), synth, shortlist, cache=cache)
        other = _reranker(tiny_cross_encoder, tmp_path, max_length=32)
        score_shortlist(other, synth, shortlist, cache=cache)
        assert [i.entries for i in cache.fingerprints()] == [shortlist.num_pairs()] * 2
    assert other.stats.pairs_from_cache == 0


def _writer(path: str, worker: int, rounds: int) -> None:
    with ScoreCache(path) as cache:
        fp = cache.register("shared", {"kind": "test"})
        for r in range(rounds):
            # Both workers write overlapping keys (same values) and their own keys.
            rows = [(text_sha(f"q{r}"), text_sha(f"p{i}"), float(i), False) for i in range(200)]
            rows += [(text_sha(f"w{worker}q{r}"), text_sha(f"p{i}"), float(-i), None)
                     for i in range(200)]
            cache.put(fp, rows)
            cache.lookup(fp, text_sha(f"q{r}"), [text_sha("p1")])


def test_concurrent_runs_can_share_one_cache(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 25)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    with ScoreCache(path) as cache:
        assert [i.entries for i in cache.fingerprints()] == [25 * 200 + 3 * 25 * 200]


# --- the CLI: a run, its rerun, the cache commands -------------------------------------------

def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


@pytest.fixture()
def synth_config(tmp_path, tiny_cross_encoder, monkeypatch):
    monkeypatch.setenv("RERANK_EVAL_CACHE", str(tmp_path / "cache.sqlite"))
    data = write_beir(tmp_path / "synth", queries=40, docs=120)
    return write_config(tmp_path / "synth.yaml", data, tiny_cross_encoder, depth=10)


def test_a_rerun_scores_nothing_and_reports_cache_hits(synth_config, tmp_path, capsys):
    assert main(["run", str(synth_config), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["run", str(synth_config), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    first = _results(tmp_path / "a")["rerankers"][0]
    second = _results(tmp_path / "b")["rerankers"][0]
    assert first["pairs_scored"] == 400 and first["pairs_from_cache"] == 0
    assert second["pairs_scored"] == 0 and second["pairs_from_cache"] == 400
    assert second["metrics"] == first["metrics"]
    assert second["cache_fingerprint"] == first["cache_fingerprint"]
    assert ((tmp_path / "b/runs/tiny.scores.tsv").read_bytes()
            == (tmp_path / "a/runs/tiny.scores.tsv").read_bytes())


def test_new_depths_and_metrics_reuse_the_cached_scores(synth_config, tmp_path, tiny_cross_encoder):
    main(["run", str(synth_config), "--out", str(tmp_path / "a"), "--quiet"])
    changed = write_config(tmp_path / "changed.yaml", tmp_path / "synth", tiny_cross_encoder,
                           depth=10, depths=[3, 5, 10], metrics=["mrr@10", "map@10", "p@5"])
    main(["run", str(changed), "--out", str(tmp_path / "b"), "--quiet"])
    rerun = _results(tmp_path / "b")["rerankers"][0]
    assert (rerun["pairs_scored"], rerun["pairs_from_cache"]) == (0, 400)


def test_no_cache_scores_every_pair_and_leaves_no_cache_file(synth_config, tmp_path):
    assert main(["run", str(synth_config), "--out", str(tmp_path / "a"), "--quiet",
                 "--no-cache"]) == 0
    assert not (tmp_path / "cache.sqlite").exists()
    entry = _results(tmp_path / "a")["rerankers"][0]
    assert (entry["pairs_scored"], entry["pairs_from_cache"]) == (400, 0)
    assert "cache_fingerprint" not in entry


def test_cache_info_export_and_clear(synth_config, tmp_path, capsys):
    main(["run", str(synth_config), "--out", str(tmp_path / "a"), "--quiet"])
    fp = _results(tmp_path / "a")["rerankers"][0]["cache_fingerprint"]
    capsys.readouterr()
    assert main(["cache", "info"]) == 0
    info = capsys.readouterr().out
    assert "entries: 400 in 1 fingerprints" in info and fp[:16] in info
    assert main(["cache", "export", "--out", str(tmp_path / "x.tsv")]) == 0
    lines = (tmp_path / "x.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["fingerprint", "query_sha256", "passage_sha256", "score",
                                    "truncated"]
    assert len(lines) == 401 and all(line.startswith(fp) for line in lines[1:])
    assert main(["cache", "export", "--format", "jsonl", "--out", str(tmp_path / "x.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "x.jsonl").read_text().splitlines()]
    exported = {(r["query_sha256"], r["passage_sha256"]): r["score"] for r in rows}
    scores = (tmp_path / "a/runs/tiny.scores.tsv").read_text().splitlines()[1:]
    ds = load_dataset("beir", str(tmp_path / "synth"), split="test", base_dir=tmp_path)
    for line in scores:
        q, d, s = line.split("\t")
        key = (text_sha(ds.queries[q]).hex(), text_sha(ds.corpus[d]).hex())
        assert exported[key] == float(s)
    assert main(["cache", "clear", "--fingerprint", "ffff"]) == 0
    assert "removed 0 entries" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 400 entries" in capsys.readouterr().out
    main(["cache", "info"])
    assert "entries: 0 in 0 fingerprints" in capsys.readouterr().out


def test_cache_commands_without_a_cache_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RERANK_EVAL_CACHE", str(tmp_path / "none.sqlite"))
    assert main(["cache", "info"]) == 0
    assert "not created yet" in capsys.readouterr().out
    assert main(["cache", "export"]) == 2
    assert "no score cache here" in capsys.readouterr().err


# --- config ----------------------------------------------------------------------------------

def test_cache_config_path_is_relative_to_the_config_file(synth_config, tmp_path):
    text = synth_config.read_text() + "cache: {path: sub/scores.sqlite}\n"
    synth_config.write_text(text)
    config = load_config(synth_config)
    assert config.cache.enabled and config.cache.path == tmp_path / "sub" / "scores.sqlite"
    assert config.resolved()["cache"] == {"enabled": True,
                                          "path": str(tmp_path / "sub" / "scores.sqlite")}


@pytest.mark.parametrize("value, message", [
    ("{enabled: maybe}", "cache.enabled: expected true or false"),
    ("{pth: x}", "cache: unknown key 'pth'"),
    ("{path: 3}", "cache.path: expected a file path"),
    ("[1]", "cache: expected a mapping"),
])
def test_bad_cache_config_names_the_field(synth_config, value, message):
    synth_config.write_text(synth_config.read_text() + f"cache: {value}\n")
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        load_config(synth_config)


def test_cache_disabled_in_config(synth_config, tmp_path):
    synth_config.write_text(synth_config.read_text() + "cache: {enabled: false}\n")
    assert main(["run", str(synth_config), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert not (tmp_path / "cache.sqlite").exists()
    assert np.isclose(_results(tmp_path / "a")["rerankers"][0]["pairs_scored"], 400)
