"""Issue #18, the score cache and disk edges: a score edited inside a valid cache file is
refused, a cache file corrupted inside is one line in every command, and a full disk is one line
naming the path with the previous file (or the cache) left intact."""

from __future__ import annotations

import builtins
import errno
import io
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from fake_rerank_server import FakeRerankServer
from rerank_eval.cli import main
from rerank_eval.errors import InputError
from rerank_eval.scoring.cache import ScoreCache, text_sha

KEY = "sk-cache-edges-0123456789"


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("JINA_API_KEY", KEY)
    srv = FakeRerankServer(KEY, retry_after="0")
    yield srv
    srv.close()


@pytest.fixture
def config(tmp_path, server) -> Path:
    """A fast run: the bundled quickstart, BM25, one hosted reranker on the loopback server."""
    raw = {"name": "cache-edges", "dataset": {"bundled": "quickstart"},
           "first_stage": {"bm25": {}, "depth": 10}, "metrics": ["ndcg@10"],
           "sanity_check": False,
           "rerankers": [{"name": "jina-api", "kind": "jina", "base_url": server.base_url("jina"),
                          "max_retries": 0}]}
    path = tmp_path / "edges.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def cache_path() -> Path:
    return Path(os.environ["RERANK_EVAL_CACHE"])  # each test's own (conftest)


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    return err


def fill(path: Path, n: int = 3000) -> None:
    with ScoreCache(path) as cache:
        fp = cache.register("f" * 64, {"kind": "test"})
        cache.put(fp, [(text_sha(f"q{i % 30}"), text_sha(f"p{i}"), i / 7, None)
                       for i in range(n)])


# --- 5. integrity ------------------------------------------------------------------------------

def test_a_score_edited_inside_a_valid_cache_file_is_refused(tmp_path):
    path = tmp_path / "c.sqlite"
    fill(path, 50)
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE scores SET score = 99.0 WHERE passage_sha = ?", (text_sha("p7"),))
    db.close()
    with ScoreCache(path) as cache:
        fp = cache.register("f" * 64, {"kind": "test"})
        ok = cache.lookup(fp, text_sha("q8"), [text_sha("p8")])  # an untouched row is served
        assert ok[text_sha("p8")].score == 8 / 7
        with pytest.raises(InputError) as err:
            cache.lookup(fp, text_sha("q7"), [text_sha("p7")])
        message = str(err.value)
        assert message.startswith(f"{path}: ") and "\n" not in message
        assert "checksum" in message and "rerank-eval cache clear" in message
        with pytest.raises(InputError, match="checksum"):
            list(cache.rows())  # export refuses it too


def test_an_edited_score_stops_a_run_in_one_line(config, tmp_path, capsys):
    assert main(["run", str(config), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    db = sqlite3.connect(cache_path())
    with db:
        db.execute("UPDATE scores SET score = score + 1 WHERE passage_sha = "
                   "(SELECT passage_sha FROM scores LIMIT 1)")
    db.close()
    capsys.readouterr()
    err = one_line_error(capsys, main(["run", str(config), "--out", str(tmp_path / "b"),
                                       "--quiet"]))
    assert str(cache_path()) in err and "checksum" in err


OLD_SCHEMA = """
CREATE TABLE fingerprints (id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE,
                           description TEXT NOT NULL);
CREATE TABLE scores (fp INTEGER NOT NULL, query_sha BLOB NOT NULL, passage_sha BLOB NOT NULL,
                     score REAL, truncated INTEGER, PRIMARY KEY (fp, query_sha, passage_sha))
                     WITHOUT ROWID;
"""


def test_an_old_cache_file_without_checksums_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    with db:
        db.execute("INSERT INTO fingerprints VALUES (1, ?, '{}')", ("a" * 64,))
        db.executemany("INSERT INTO scores VALUES (1, ?, ?, ?, ?)",
                       [(text_sha("q"), text_sha(f"p{i}"), i * 0.5, i % 2) for i in range(4)])
    db.close()
    with ScoreCache(path) as cache:
        fp = cache.register("a" * 64, {})
        hits = cache.lookup(fp, text_sha("q"), [text_sha(f"p{i}") for i in range(4)])
    assert [hits[text_sha(f"p{i}")].score for i in range(4)] == [0.0, 0.5, 1.0, 1.5]
    db = sqlite3.connect(path)
    with db:  # from now on the migrated rows are checked like new ones
        db.execute("UPDATE scores SET score = 7.0 WHERE passage_sha = ?", (text_sha("p1"),))
    db.close()
    with ScoreCache(path) as cache, pytest.raises(InputError, match="checksum"):
        cache.lookup(cache.register("a" * 64, {}), text_sha("q"), [text_sha("p1")])


def corrupt(path: Path) -> None:
    """Garbage over every page but the first (the header and the schema stay readable)."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert len(data) > 4 * page
    for i in range(page, len(data)):
        data[i] = (i * 131 + 7) % 251
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("command", [["cache", "info"], ["cache", "export"], ["run"]])
def test_a_cache_file_corrupted_inside_is_one_line_in_every_command(config, tmp_path, capsys,
                                                                     command):
    fill(cache_path())
    corrupt(cache_path())
    argv = command + ([str(config), "--out", str(tmp_path / "out"), "--quiet"]
                      if command == ["run"] else [])
    err = one_line_error(capsys, main(argv))
    assert str(cache_path()) in err and "malformed" in err
    assert "delete" in err


# --- 6. a full disk ----------------------------------------------------------------------------

class _FullDisk:
    """A file open for writing on a disk with ``room`` bytes left."""

    def __init__(self, f, room: int):
        self._f, self._room = f, room

    def write(self, data):
        if len(data) > self._room:
            self._f.write(data[:self._room])
            self._f.flush()
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@contextmanager
def disk_full(monkeypatch, room: int = 10):
    """Every file opened for writing (open, Path.write_text, os.fdopen) fills the disk after
    ``room`` bytes; reading is untouched."""
    real_open, real_fdopen = builtins.open, os.fdopen

    def wrap(opener):
        def patched(file, mode="r", *args, **kwargs):
            f = opener(file, mode, *args, **kwargs)
            return _FullDisk(f, room) if set(mode) & set("wax+") else f
        return patched

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", wrap(real_open))
        m.setattr(io, "open", wrap(real_open))
        m.setattr(os, "fdopen", wrap(real_fdopen))
        yield


def test_cache_export_on_a_full_disk_keeps_the_old_file(monkeypatch, tmp_path, capsys):
    fill(cache_path(), 200)
    out = tmp_path / "export.tsv"
    out.write_text("old export\n", encoding="utf-8")
    with disk_full(monkeypatch):
        code = main(["cache", "export", "--out", str(out)])
    err = one_line_error(capsys, code)
    assert str(out) in err and "No space left on device" in err
    assert out.read_text(encoding="utf-8") == "old export\n"
    assert sorted(os.listdir(tmp_path)) == ["export.tsv"]  # no temp file left


def test_a_report_on_a_full_disk_keeps_the_old_report(config, monkeypatch, tmp_path, capsys):
    assert main(["run", str(config), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    html = tmp_path / "rep" / "report.html"
    html.parent.mkdir()
    html.write_text("<html>old</html>", encoding="utf-8")
    capsys.readouterr()
    with disk_full(monkeypatch):
        code = main(["report", str(tmp_path / "a"), "--out", str(html.parent), "--quiet"])
    err = one_line_error(capsys, code)
    assert "No space left on device" in err and str(html.parent) in err
    assert html.read_text(encoding="utf-8") == "<html>old</html>"


def test_bench_json_on_a_full_disk_keeps_the_old_file(monkeypatch, tmp_path, capsys):
    import rerank_eval.bench as bench

    monkeypatch.setattr(bench, "load_pairs", lambda *a, **k: type("P", (), {
        "pairs": [("q", "d")], "source": "test"})())
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: {"rows": list(range(100))})
    monkeypatch.setattr(bench, "format_report", lambda report: "table")
    out = tmp_path / "bench.json"
    out.write_text("{}\n", encoding="utf-8")
    with disk_full(monkeypatch):
        code = main(["bench", "--beir", str(tmp_path), "--json", str(out), "--quiet"])
    err = one_line_error(capsys, code)
    assert str(out) in err and "No space left on device" in err
    assert out.read_text(encoding="utf-8") == "{}\n"


def test_the_cache_on_a_full_disk_is_one_line_and_stays_consistent(tmp_path):
    path = tmp_path / "c.sqlite"
    fill(path, 100)
    with ScoreCache(path) as cache:
        fp = cache.register("f" * 64, {"kind": "test"})
        pages = cache._db.execute("PRAGMA page_count").fetchone()[0]
        cache._db.execute(f"PRAGMA max_page_count = {pages}")  # no room for one more page
        chunk = [(text_sha("new"), text_sha(f"n{i}"), float(i), None) for i in range(2000)]
        with pytest.raises(InputError) as err:
            cache.put(fp, chunk)
        message = str(err.value)
        assert message.startswith(f"{path}: ") and "\n" not in message and "full" in message
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 100  # none of the chunk
    db.close()
    with ScoreCache(path) as cache:  # and the file still serves what it held
        fp = cache.register("f" * 64, {"kind": "test"})
        assert cache.lookup(fp, text_sha("q5"), [text_sha("p5")])[text_sha("p5")].score == 5 / 7


def test_a_run_whose_cache_fills_the_disk_is_one_line(config, monkeypatch, tmp_path, capsys):
    real_put = ScoreCache.put

    def put_on_full_disk(self, fp_id, rows):
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        self._db.execute(f"PRAGMA max_page_count = {pages}")
        return real_put(self, fp_id, rows)

    monkeypatch.setattr(ScoreCache, "put", put_on_full_disk)
    err = one_line_error(capsys, main(["run", str(config), "--out", str(tmp_path / "a"),
                                       "--quiet"]))
    assert str(cache_path()) in err and "full" in err
