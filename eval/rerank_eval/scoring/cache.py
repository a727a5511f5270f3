"""Score cache: a pair scored once is never scored again by the same model.

An embedded SQLite file in WAL mode (stdlib, nothing to start). A row is keyed by the
reranker's fingerprint (everything that changes a score: backend, weights hash, max_length,
dtype, score transform) plus SHA-256 of the query text and of the passage text as fed to the
model. Metrics, depths and reports are not part of the key, so changing them reuses scores.

Listwise rerankers keep each window's answer in the same file (table ``window_answers``),
keyed by the model's fingerprint and SHA-256 of the window's exact messages (template,
query, passages as shown), so a re-run sends nothing.

Writes are short ``INSERT OR REPLACE`` transactions, one per scored chunk, so a crash loses at
most the chunk in flight, and several runs can share one file (WAL + busy timeout).
Scores are stored as SQLite REAL (IEEE float64; NULL stands for NaN, and -0.0 reads back as
0.0, which is why score_shortlist normalises -0.0 before use): a cached score is bit-identical
to the one the model produced.

Every row carries a checksum (64 bits of BLAKE2b over its fingerprint hash, keys, score and
truncation flag), checked whenever the row is read: a score edited inside a valid SQLite file
(by hand or by a tool) is refused with one line naming the file, never served. It guards
against edits and damage, not against someone who recomputes it on purpose. A file from before
checksums is migrated when opened: its rows get checksums of their current content (they were
trusted before, and keeping them spares re-billing hosted scores), and are checked from then on.
A file SQLite itself finds damaged, or a full disk, is one line naming the file too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import sqlite3
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any

from pydantic import ValidationInfo, field_validator

from rerank_eval.errors import InputError
from rerank_eval.params import Bool, Params, check_before, context_base_dir

logger = logging.getLogger(__name__)

ENV_VAR = "RERANK_EVAL_CACHE"
FILE_NAME = "scores.sqlite"
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fingerprints (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scores (
    fp INTEGER NOT NULL,
    query_sha BLOB NOT NULL,
    passage_sha BLOB NOT NULL,
    score REAL,
    truncated INTEGER,
    checksum INTEGER,
    PRIMARY KEY (fp, query_sha, passage_sha)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS window_answers (
    fp INTEGER NOT NULL,
    window_sha BLOB NOT NULL,
    answer TEXT NOT NULL,
    PRIMARY KEY (fp, window_sha)
) WITHOUT ROWID;
"""
_FIX = (f"delete the file (its scores are recomputed), set {ENV_VAR} to another file, or run "
        "with --no-cache")


def _is_path(value: Any) -> bool:
    return isinstance(value, os.PathLike) or (isinstance(value, str) and bool(value.strip()))


class CacheConfig(Params):
    """The score cache: on by default; no ``path`` means $RERANK_EVAL_CACHE or the user's
    cache directory (see :func:`default_cache_path`)."""

    enabled: Bool = True
    path: Annotated[Path, check_before(_is_path, "expected a file path")] | None = None
    """A cache file or folder; relative to the config's folder."""

    @field_validator("path", mode="after")
    @classmethod
    def _resolve(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None:
            return None
        path = Path(os.path.expanduser(path))
        base_dir = context_base_dir(info)
        return path if path.is_absolute() or base_dir is None else base_dir / path

    def resolved(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "path": None if self.path is None else str(self.path)}


def default_cache_path() -> Path:
    """``$RERANK_EVAL_CACHE``, else ``$XDG_CACHE_HOME/rerank-eval/scores.sqlite``, else
    ``~/.cache/rerank-eval/scores.sqlite``. A value naming a folder gets ``scores.sqlite`` in it."""
    env = os.environ.get(ENV_VAR)
    if env:
        return cache_file(Path(os.path.expanduser(env)))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rerank-eval" / FILE_NAME


def cache_file(path: Path) -> Path:
    return path / FILE_NAME if path.is_dir() or str(path).endswith(os.sep) else path


def text_sha(text: str) -> bytes:
    """The key of a query or passage: SHA-256 of its UTF-8 bytes (unpaired surrogates kept)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def row_checksum(fp_hash: str | None, query_sha: bytes, passage_sha: bytes, score: float | None,
                 truncated: int | None) -> int:
    """A row's checksum as stored (a signed 64-bit integer, SQLite's INTEGER): ``score`` and
    ``truncated`` as SQLite holds them (None for NULL)."""
    h = hashlib.blake2b(digest_size=8)
    h.update((fp_hash or "").encode("ascii", "replace"))
    h.update(bytes(query_sha))
    h.update(bytes(passage_sha))
    h.update(b"N" if score is None else struct.pack("<d", score))
    h.update(b"N" if truncated is None else bytes([1 if truncated else 0]))
    return int.from_bytes(h.digest(), "big", signed=True)


def fingerprint_hash(fingerprint: dict[str, Any]) -> str:
    """A stable hash of a reranker fingerprint (canonical JSON)."""
    canonical = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class CachedScore:
    score: float
    truncated: bool | None


@dataclass
class FingerprintInfo:
    hash: str
    description: dict[str, Any]
    entries: int


class ScoreCache:
    """One SQLite file of model scores, safe to share between concurrent runs."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fp_ids: dict[str, int] = {}
        self._fp_hashes: dict[int, str] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One connection, used from several threads by listwise rankers (queries in
            # flight at once) under self._lock.
            self._db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S,
                                       isolation_level=None, check_same_thread=False)
        except OSError as e:
            raise InputError(f"score cache cannot be created ({e.strerror})",
                             path=self.path) from None
        except sqlite3.DatabaseError as e:
            raise self._error(e) from None
        self._lock = threading.RLock()
        with self._guard():
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            with self._transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._migrate()

    def _migrate(self) -> None:
        """Give a file from before checksums its checksum column (inside the caller's
        transaction, so two runs opening it at once migrate it once)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(scores)")}
        if "checksum" in columns:
            return
        self._db.create_function("row_checksum", 5, row_checksum, deterministic=True)
        self._db.execute("ALTER TABLE scores ADD COLUMN checksum INTEGER")
        n = self._db.execute(
            "UPDATE scores SET checksum = row_checksum((SELECT hash FROM fingerprints "
            "WHERE id = scores.fp), query_sha, passage_sha, score, truncated)").rowcount
        logger.info(f"score cache {self.path}: added checksums to its {n:,} scores (a file "
                    "from an older rerank-eval; they are checked from now on)")

    def _error(self, e: sqlite3.DatabaseError) -> InputError:
        """One line for an SQLite failure: a full disk, or a file it finds damaged."""
        if "full" in str(e):
            return InputError(f"score cache: cannot store scores ({e}); the scores stored so "
                              f"far are intact: free some space, set {ENV_VAR} to a file on "
                              "another disk, or run with --no-cache", path=self.path)
        return InputError(f"score cache unusable ({e}); {_FIX}", path=self.path)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """SQLite errors as one InputError line naming the file."""
        try:
            yield
        except sqlite3.DatabaseError as e:
            raise self._error(e) from None

    def _tampered(self, fp_hash: str) -> InputError:
        return InputError(
            f"score cache: a stored score fails its checksum (edited or damaged, fingerprint "
            f"{fp_hash[:16]}): delete the file (its scores are recomputed) or run "
            f"`rerank-eval cache clear --fingerprint {fp_hash[:16]}`", path=self.path)

    # -- plumbing ---------------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def close(self) -> None:
        with self._guard():
            self._db.close()

    def __enter__(self) -> ScoreCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scores -----------------------------------------------------------------------------

    def register(self, fp_hash: str, description: dict[str, Any]) -> int:
        """The row id of a fingerprint, creating it (with its readable description) if new."""
        if fp_hash not in self._fp_ids:
            with self._guard(), self._transaction():
                self._db.execute(
                    "INSERT OR IGNORE INTO fingerprints (hash, description) VALUES (?, ?)",
                    (fp_hash, json.dumps(description, sort_keys=True, default=str)))
                row = self._db.execute("SELECT id FROM fingerprints WHERE hash = ?",
                                       (fp_hash,)).fetchone()
            self._fp_ids[fp_hash] = int(row[0])
            self._fp_hashes[int(row[0])] = fp_hash
        return self._fp_ids[fp_hash]

    def _hash_of(self, fp_id: int) -> str:
        if fp_id not in self._fp_hashes:
            row = self._db.execute("SELECT hash FROM fingerprints WHERE id = ?",
                                   (fp_id,)).fetchone()
            self._fp_hashes[fp_id] = "" if row is None else str(row[0])
        return self._fp_hashes[fp_id]

    def lookup(self, fp_id: int, query_sha: bytes,
               passage_shas: Iterable[bytes]) -> dict[bytes, CachedScore]:
        """Cached scores of one query against the given passages (misses are absent); a row
        failing its checksum is an InputError."""
        wanted = set(passage_shas)
        found: dict[bytes, CachedScore] = {}
        with self._guard():
            fp_hash = self._hash_of(fp_id)
            rows = self._db.execute(
                "SELECT passage_sha, score, truncated, checksum FROM scores "
                "WHERE fp = ? AND query_sha = ?", (fp_id, query_sha)).fetchall()
        for p, s, t, check in rows:
            p = bytes(p)
            if p not in wanted:
                continue
            if check != row_checksum(fp_hash, query_sha, p, s, t):
                raise self._tampered(fp_hash)
            found[p] = CachedScore(math.nan if s is None else float(s),
                                   None if t is None else bool(t))
        return found

    def put(self, fp_id: int,
            rows: Sequence[tuple[bytes, bytes, float, bool | None]]) -> None:
        """Store ``(query_sha, passage_sha, score, truncated)`` rows in one short transaction."""
        if not rows:
            return
        with self._guard():
            fp_hash = self._hash_of(fp_id)
            stored = []
            for q, p, s, t in rows:
                # + 0.0: SQLite gives -0.0 back as 0.0, and the checksum is of what it gives.
                score = None if math.isnan(s) else float(s) + 0.0
                flag = None if t is None else int(bool(t))
                stored.append((fp_id, q, p, score, flag,
                               row_checksum(fp_hash, q, p, score, flag)))
            with self._transaction():
                self._db.executemany(
                    "INSERT OR REPLACE INTO scores (fp, query_sha, passage_sha, score, truncated, "
                    "checksum) VALUES (?, ?, ?, ?, ?, ?)", stored)

    # -- listwise window answers ------------------------------------------------------------

    def get_answer(self, fp_id: int, window_sha: bytes) -> str | None:
        """A listwise model's cached answer to one window (its exact messages), or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT answer FROM window_answers WHERE fp = ? AND window_sha = ?",
                (fp_id, window_sha)).fetchone()
        return None if row is None else str(row[0])

    def put_answer(self, fp_id: int, window_sha: bytes, answer: str) -> None:
        """Store one window's answer at once (a crash loses at most the windows in flight)."""
        with self._lock, self._transaction():
            self._db.execute("INSERT OR REPLACE INTO window_answers (fp, window_sha, answer) "
                             "VALUES (?, ?, ?)", (fp_id, window_sha, answer))

    # -- maintenance (rerank-eval cache ...) ------------------------------------------------

    def fingerprints(self) -> list[FingerprintInfo]:
        with self._guard():
            rows = self._db.execute(
                "SELECT f.hash, f.description, "
                "(SELECT COUNT(*) FROM scores s WHERE s.fp = f.id) + "
                "(SELECT COUNT(*) FROM window_answers w WHERE w.fp = f.id) "
                "FROM fingerprints f ORDER BY f.hash").fetchall()
        return [FingerprintInfo(h, json.loads(d), int(n)) for h, d, n in rows]

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._files() if p.exists())

    def _files(self) -> list[Path]:
        return [self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")]

    def clear(self, fp_prefix: str | None = None) -> int:
        """Delete all scores (or those of fingerprints starting with ``fp_prefix``)."""
        with self._guard():
            return self._clear(fp_prefix)

    def _clear(self, fp_prefix: str | None) -> int:
        with self._transaction():
            if fp_prefix is None:
                n = self._db.execute("DELETE FROM scores").rowcount
                n += self._db.execute("DELETE FROM window_answers").rowcount
                self._db.execute("DELETE FROM fingerprints")
            else:
                ids = [r[0] for r in self._db.execute(
                    "SELECT id FROM fingerprints WHERE hash LIKE ?", (fp_prefix + "%",))]
                n = 0
                for fp_id in ids:
                    n += self._db.execute("DELETE FROM scores WHERE fp = ?", (fp_id,)).rowcount
                    n += self._db.execute("DELETE FROM window_answers WHERE fp = ?",
                                          (fp_id,)).rowcount
                    self._db.execute("DELETE FROM fingerprints WHERE id = ?", (fp_id,))
        self._fp_ids.clear()
        self._fp_hashes.clear()
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.execute("VACUUM")
        return n

    def rows(self) -> Iterator[tuple[str, str, str, float, bool | None]]:
        """``(fingerprint, query_sha256, passage_sha256, score, truncated)`` for every entry;
        a row failing its checksum is an InputError."""
        with self._guard():
            cursor = self._db.execute(
                "SELECT f.hash, s.query_sha, s.passage_sha, s.score, s.truncated, s.checksum "
                "FROM scores s JOIN fingerprints f ON f.id = s.fp "
                "ORDER BY f.hash, s.query_sha, s.passage_sha")
            for fp, q, p, s, t, check in cursor:
                q, p = bytes(q), bytes(p)
                if check != row_checksum(fp, q, p, s, t):
                    raise self._tampered(fp)
                yield (fp, q.hex(), p.hex(), math.nan if s is None else float(s),
                       None if t is None else bool(t))

    def export(self, out: IO[str], fmt: str = "tsv") -> int:
        """Write every entry as TSV (with a header) or JSON lines; returns the count."""
        n = 0
        if fmt == "tsv":
            out.write("fingerprint\tquery_sha256\tpassage_sha256\tscore\ttruncated\n")
        for fp, q, p, s, t in self.rows():
            if fmt == "tsv":
                out.write(f"{fp}\t{q}\t{p}\t{s!r}\t{'' if t is None else int(t)}\n")
            else:
                out.write(json.dumps({"fingerprint": fp, "query_sha256": q,
                                      "passage_sha256": p, "score": s, "truncated": t}) + "\n")
            n += 1
        return n


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rollback on error): takes the write lock up front so
    concurrent writers wait on the busy timeout instead of failing mid-transaction."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:  # SQLite may have rolled back itself (a full disk)
            self.db.execute("ROLLBACK")


def count_scores(path: str | Path) -> int:
    """How many scores a cache file holds, read-only (safe while a run writes to it, as a
    monitor or a test watching a run does); 0 for a missing file or one without its schema."""
    path = Path(path)
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM scores").fetchone()[0])
        finally:
            db.close()
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def open_cache(enabled: bool, path: str | Path | None = None) -> ScoreCache | None:
    """The run's cache: None when disabled; ``path`` (from the config) else the default."""
    if not enabled:
        return None
    return ScoreCache(cache_file(Path(path)) if path is not None else default_cache_path())
