"""On-disk cache of corpus embeddings, so a second run over the same corpus does not re-embed.

An entry is a folder ``<model key>-<corpus key>/`` holding ``embeddings.npy`` (float32, one row
per document in corpus order) and ``manifest.json``. The model key hashes the weights and
config files (content, not path) plus every setting that changes an embedding; the corpus key
hashes the ordered doc ids and texts. Entries are built in ``<entry>.partial/`` with a checkpoint
after every chunk and renamed when complete: an interrupted run never leaves a half-written
entry that a later run would trust, and the next run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rerank_eval.files import atomic_write_text
from rerank_eval.models import CACHE_ENV as CACHE_ENV  # re-exported: the env var it reads
from rerank_eval.models import cache_root, model_identity

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
EMBEDDINGS = "embeddings.npy"
PROGRESS = "progress.json"

def default_cache_dir() -> Path:
    """``$RERANK_EVAL_CACHE_DIR/embeddings``, else ``~/.cache/rerank-eval/embeddings``."""
    return cache_root() / "embeddings"


def model_fingerprint(model_path: str) -> str:
    """The model's content hash (``models.model_identity``: the same hash the score cache
    keys on); a model known only by its hub id hashes that id."""
    identity = model_identity(model_path)
    return identity.get("weights_sha256") or hashlib.sha256(
        f"id:{identity['hub_id']}".encode()).hexdigest()


def corpus_fingerprint(doc_ids: Sequence[str], texts: Sequence[str]) -> str:
    """sha256 over the ordered (id, text) pairs, length-prefixed so no two corpora collide."""
    digest = hashlib.sha256()
    for doc_id, text in zip(doc_ids, texts):
        for part in (doc_id.encode("utf-8"), text.encode("utf-8")):
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)
    digest.update(len(doc_ids).to_bytes(8, "little"))
    return digest.hexdigest()


@dataclass
class CacheEntry:
    """Where one (model settings, corpus) pair's embeddings live."""

    folder: Path
    model_key: str
    corpus_key: str

    @classmethod
    def locate(cls, cache_dir: Path, model_settings: dict[str, Any], corpus_key: str) -> CacheEntry:
        model_key = hashlib.sha256(
            json.dumps(model_settings, sort_keys=True).encode("utf-8")).hexdigest()
        return cls(cache_dir / f"{model_key[:16]}-{corpus_key[:16]}", model_key, corpus_key)

    def load(self, n_docs: int) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The cached matrix (memory-mapped) and manifest, or None when absent or stale."""
        try:
            manifest = json.loads((self.folder / MANIFEST).read_text(encoding="utf-8"))
            if (manifest.get("model_key") != self.model_key
                    or manifest.get("corpus_key") != self.corpus_key):
                return None
            matrix = np.load(self.folder / EMBEDDINGS, mmap_mode="r")
        except (OSError, ValueError):
            return None
        if matrix.ndim != 2 or matrix.shape[0] != n_docs or matrix.dtype != np.float32:
            return None
        return matrix, manifest

    def build(
        self,
        n_docs: int,
        dim: int,
        fill: Callable[[np.ndarray, int, dict[str, Any], Callable[[int], None]], None],
        info: dict[str, Any],
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Create the entry. ``fill(matrix, start, state, checkpoint)`` writes rows ``start:``
        into a memory-mapped float32 array, keeping counters in ``state`` and calling
        ``checkpoint(rows_done)`` after each chunk. An interrupted build resumes from its last
        checkpoint (the ``.partial`` folder); the entry folder appears only once complete."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        partial = self.folder.with_name(f"{self.folder.name}.partial")
        progress_path = partial / PROGRESS
        progress = self._progress(progress_path, n_docs, dim)
        if progress is None:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            matrix = np.lib.format.open_memmap(partial / EMBEDDINGS, mode="w+",
                                               dtype=np.float32, shape=(n_docs, dim))
            progress = {"model_key": self.model_key, "corpus_key": self.corpus_key,
                        "documents": n_docs, "dim": dim, "done": 0, "seconds": 0.0,
                        "state": {}}
        else:
            matrix = np.load(partial / EMBEDDINGS, mmap_mode="r+")
            logger.info(f"resuming an interrupted embedding at {progress['done']}/{n_docs} "
                        "documents")
        t0 = time.perf_counter()
        state: dict[str, Any] = progress["state"]

        def checkpoint(done: int) -> None:
            matrix.flush()
            progress.update(done=done, state=state,
                            seconds=progress["seconds"] + time.perf_counter() - t0)
            _write_json(progress_path, progress)

        base_seconds = progress["seconds"]
        fill(matrix, int(progress["done"]), state, checkpoint)
        matrix.flush()
        # Close the memory map before the folder is renamed (None, not del: checkpoint's
        # closure refers to it).
        matrix = None  # type: ignore[assignment]
        manifest = {**info, **state, "model_key": self.model_key,
                    "corpus_key": self.corpus_key, "documents": n_docs, "dim": dim,
                    "embed_seconds": round(base_seconds + time.perf_counter() - t0, 3),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        progress_path.unlink(missing_ok=True)
        _write_json(partial / MANIFEST, manifest)
        if self.folder.exists():
            shutil.rmtree(self.folder)
        partial.replace(self.folder)
        return np.load(self.folder / EMBEDDINGS, mmap_mode="r"), manifest

    def _progress(self, path: Path, n_docs: int, dim: int) -> dict[str, Any] | None:
        """The checkpoint of an interrupted build of this very entry, if there is one."""
        try:
            progress = json.loads(path.read_text(encoding="utf-8"))
            matrix = np.load(path.parent / EMBEDDINGS, mmap_mode="r")
        except (OSError, ValueError):
            return None
        same = (progress.get("model_key") == self.model_key
                and progress.get("corpus_key") == self.corpus_key
                and matrix.shape == (n_docs, dim) and matrix.dtype == np.float32
                and 0 <= int(progress.get("done", -1)) <= n_docs)
        return progress if same else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
