"""Dense retrieval: a sentence-transformers bi-encoder, exact top-k over the whole corpus.

Corpus embeddings are computed once per (model, settings, corpus) and cached on disk
(``embedding_cache``); queries are embedded at retrieval time and searched by exact inner
product (cosine when ``normalize``), chunked so memory stays bounded for large corpora.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rerank_eval.datasets import Dataset
from rerank_eval.errors import InputError
from rerank_eval.first_stage.base import FirstStage
from rerank_eval.first_stage.embedding_cache import (
    CacheEntry,
    corpus_fingerprint,
    default_cache_dir,
    model_fingerprint,
)
from rerank_eval.first_stage.topk import doc_id_tiebreak, exact_topk
from rerank_eval.models import load_pretrained, resolve_model
from rerank_eval.progress import Progress
from rerank_eval.runs import Run

logger = logging.getLogger(__name__)

# Texts embedded per call into the memory-mapped matrix (and per resumable checkpoint): large
# enough for sentence-transformers' length sorting to pad little, small enough to bound memory
# on a 1M-passage corpus and to lose little work when a run is interrupted.
EMBED_CHUNK = 2048
CACHE_FORMAT = 1


class Dense(FirstStage):
    """Bi-encoder retrieval (e.g. ``model: packaged:all-minilm-l6-v2``)."""

    key = "dense"
    allowed: dict[str, Any] = {"model": None, "batch_size": 64, "normalize": True,
                               "max_length": None, "device": "auto", "cache": True,
                               "cache_dir": None, "chunk_size": 16384}

    def __init__(self, params: dict[str, Any] | None, *, base_dir: Path,
                 field: str | None = None):
        super().__init__(params, base_dir=base_dir, field=field)
        p = self.params
        self.model_path = resolve_model(str(p["model"] or ""), base_dir, f"{self.field}.model")
        for name in ("batch_size", "chunk_size"):
            _positive_int(p[name], f"{self.field}.{name}")
        if p["max_length"] is not None:
            _positive_int(p["max_length"], f"{self.field}.max_length")
        for name in ("normalize", "cache"):
            if not isinstance(p[name], bool):
                raise InputError(f"{self.field}.{name}: expected true or false, got {p[name]!r}")
        if p["cache_dir"] is not None and not isinstance(p["cache_dir"], str):
            raise InputError(f"{self.field}.cache_dir: expected a folder path")
        if not isinstance(p["device"], str):
            raise InputError(f"{self.field}.device: expected auto, cpu, cuda or cuda:N")
        self._model = None
        self._index: tuple[list[str], np.ndarray, np.ndarray] | None = None
        self.cache_info: dict[str, Any] = {}

    @property
    def cache_dir(self) -> Path:
        """``cache_dir`` param (relative to the config), else the default cache location."""
        raw = self.params["cache_dir"]
        if raw is None:
            return default_cache_dir()
        path = Path(raw).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            from rerank_eval.models import resolve_device

            device = str(resolve_device(str(self.params["device"])))
            self._model = load_pretrained(SentenceTransformer, self.model_path,
                                          f"{self.field}.model", device=device)
        if self.params["max_length"]:
            self._model.max_seq_length = int(self.params["max_length"])
        return self._model

    def describe(self) -> dict[str, Any]:
        out = {"kind": self.key, **self.params, "model_path": self.model_path,
               "similarity": "cosine" if self.params["normalize"] else "dot product",
               "search": "exact (chunked matrix product)"}
        if self._model is not None:
            out["max_length"] = int(self._model.max_seq_length)
            out["device"] = str(self._model.device)
        if self.cache_info:
            out["corpus_embeddings"] = dict(self.cache_info)
        return out

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 embeddings, one row per text."""
        emb = self.model.encode(list(texts), batch_size=int(self.params["batch_size"]),
                                normalize_embeddings=bool(self.params["normalize"]),
                                convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(emb, dtype=np.float32)

    def corpus_embeddings(self, doc_ids: list[str], texts: list[str]) -> np.ndarray:
        """The corpus matrix, from the cache when an entry for this model and corpus exists."""
        model = self.model
        settings = {"model": model_fingerprint(self.model_path),
                    "max_length": int(model.max_seq_length),
                    "normalize": bool(self.params["normalize"]), "dtype": "float32",
                    "format": CACHE_FORMAT}
        if not self.params["cache"]:
            t0 = time.perf_counter()
            matrix = np.empty((len(texts), self._dim()), dtype=np.float32)
            state: dict[str, Any] = {}
            self._embed_into(matrix, texts, 0, state)
            self.cache_info = {"cache": "disabled", **state,
                               "embed_seconds": round(time.perf_counter() - t0, 3)}
            self._log_embedded(len(texts), self.cache_info, "cache disabled")
            return matrix
        entry = CacheEntry.locate(self.cache_dir, settings, corpus_fingerprint(doc_ids, texts))
        hit = entry.load(len(doc_ids))
        if hit is not None:
            matrix, manifest = hit
            logger.info(f"dense: reused cached corpus embeddings ({matrix.shape[0]} x "
                        f"{matrix.shape[1]}) from {entry.folder}; not re-embedding")
            self.cache_info = {"cache": "reused", "path": str(entry.folder),
                               "embed_seconds_when_built": manifest.get("embed_seconds"),
                               "passages_truncated": manifest.get("passages_truncated")}
            return matrix
        logger.info(f"dense: embedding {len(texts)} documents with {self.params['model']} "
                    f"(cache miss; will cache in {entry.folder})")
        info = {"model": str(self.params["model"]), "model_path": self.model_path,
                "settings": settings}
        matrix, manifest = entry.build(
            len(texts), self._dim(),
            lambda out, start, state, checkpoint: self._embed_into(out, texts, start, state,
                                                                   checkpoint),
            info)
        self.cache_info = {"cache": "built", "path": str(entry.folder),
                           "embed_seconds": manifest["embed_seconds"],
                           "passages_truncated": manifest["passages_truncated"]}
        self._log_embedded(len(texts), self.cache_info, f"cached at {entry.folder}")
        return matrix

    def _log_embedded(self, n: int, info: dict[str, Any], where: str) -> None:
        seconds = float(info["embed_seconds"])
        rate = f" ({n / seconds:,.1f} documents/s)" if seconds > 0 else ""
        logger.info(f"dense: embedded {n} documents in {seconds:.1f}s{rate}; {where}")
        truncated = info.get("passages_truncated")
        if truncated:
            logger.info(f"dense: {truncated:,} of {n:,} passages truncated at "
                        f"{int(self.model.max_seq_length)} tokens")

    def _dim(self) -> int:
        model = self.model
        # sentence-transformers >= 5 renamed the method; older versions have only the old name.
        getter = (getattr(model, "get_embedding_dimension", None)
                  or model.get_sentence_embedding_dimension)
        dim = getter()
        return int(dim) if dim else int(self.encode(["dimension probe"]).shape[1])

    def _embed_into(self, out: np.ndarray, texts: list[str], start: int,
                    state: dict[str, Any],
                    checkpoint: Callable[[int], None] | None = None) -> None:
        """Rows ``start:`` of ``out``, chunk by chunk; ``state`` counts truncated passages."""
        limit = int(self.model.max_seq_length)
        state.setdefault("passages_truncated", 0)
        # The bar only: the caller logs the step's line (with the cache's location).
        with Progress("dense: embedding", len(texts), unit="documents", initial=start,
                      level=None, logger=logger) as bar:
            for begin in range(start, len(texts), EMBED_CHUNK):
                chunk = texts[begin : begin + EMBED_CHUNK]
                out[begin : begin + len(chunk)] = self.encode(chunk)
                lengths = self.model.tokenizer(chunk, add_special_tokens=True)["input_ids"]
                state["passages_truncated"] += sum(1 for ids in lengths if len(ids) > limit)
                if checkpoint is not None:
                    checkpoint(begin + len(chunk))
                bar.update(len(chunk))
                logger.debug(f"dense: embedded {begin + len(chunk)}/{len(texts)} documents")

    def _ensure_index(self, dataset: Dataset) -> tuple[list[str], np.ndarray, np.ndarray]:
        if self._index is None:
            doc_ids = list(dataset.corpus)
            matrix = self.corpus_embeddings(doc_ids, [dataset.corpus[d] for d in doc_ids])
            self._index = (doc_ids, matrix, doc_id_tiebreak(doc_ids))
        return self._index

    def search(self, query_emb: np.ndarray, depth: int,
               index: tuple[list[str], np.ndarray, np.ndarray]) -> list[dict[str, float]]:
        doc_ids, matrix, tiebreak = index
        idx, scores = exact_topk(query_emb, matrix, depth, tiebreak,
                                 chunk_size=int(self.params["chunk_size"]))
        return [{doc_ids[i]: float(s) for i, s in zip(row_i, row_s)}
                for row_i, row_s in zip(idx.tolist(), scores.tolist())]

    def retrieve(self, dataset: Dataset, depth: int) -> Run:
        index = self._ensure_index(dataset)
        query_ids = list(dataset.queries)
        if not query_ids:
            return Run(self.name)
        with Progress("dense: embedding queries", len(query_ids), unit="queries",
                      done="dense: embedded", bar=False, logger=logger) as step:
            query_emb = self.encode([dataset.queries[q] for q in query_ids])
            step.update(len(query_ids))
        results = self.search(query_emb, depth, index)
        return Run.from_scores(self.name, dict(zip(query_ids, results)))

    def query_searcher(self, dataset: Dataset, depth: int) -> Callable[[str], Any] | None:
        """Embedding one query plus the exact search over the (already embedded) corpus."""
        index = self._ensure_index(dataset)
        return lambda text: self.search(self.encode([text]), depth, index)

    def close(self) -> None:
        self._model = None
        self._index = None


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{field}: expected a positive integer, got {value!r}")
    return value
