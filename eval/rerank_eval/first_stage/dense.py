"""Dense retrieval: a sentence-transformers bi-encoder, exact top-k over the whole corpus.

Corpus embeddings are computed once per (model, settings, corpus) and cached on disk
(``embedding_cache``); queries are embedded at retrieval time and searched by exact inner
product (cosine when ``normalize``), chunked so memory stays bounded for large corpora.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationInfo, field_validator

from rerank_eval.datasets import Dataset
from rerank_eval.first_stage.base import FirstStage, FirstStageParams
from rerank_eval.first_stage.embedding_cache import (
    CacheEntry,
    corpus_fingerprint,
    default_cache_dir,
    model_fingerprint,
)
from rerank_eval.first_stage.topk import doc_id_tiebreak, exact_topk
from rerank_eval.models import Device, load_pretrained, resolve_model
from rerank_eval.params import (
    Bool,
    NonEmptyStr,
    PositiveInt,
    Str,
    as_field_error,
    context_base_dir,
)
from rerank_eval.progress import Progress
from rerank_eval.runs import Run

logger = logging.getLogger(__name__)

# Texts embedded per call into the memory-mapped matrix (and per resumable checkpoint): large
# enough for sentence-transformers' length sorting to pad little, small enough to bound memory
# on a 1M-passage corpus and to lose little work when a run is interrupted.
EMBED_CHUNK = 2048
CACHE_FORMAT = 1


class DenseParams(FirstStageParams):
    """``dense``: a sentence-transformers bi-encoder, exact top-k over the whole corpus."""

    model: NonEmptyStr
    """A local folder (relative to the config), a hub id, or packaged:all-minilm-l6-v2."""
    batch_size: PositiveInt = 64
    normalize: Bool = True
    """Cosine similarity (normalised embeddings); false: dot product."""
    max_length: PositiveInt | None = None
    """Tokens per text (default: the model's)."""
    device: Device = "auto"
    cache: Bool = True
    """Cache the corpus embeddings on disk."""
    cache_dir: Str | None = None
    """Where (relative to the config); default ~/.cache/rerank-eval/embeddings."""
    chunk_size: PositiveInt = 16384
    """Corpus rows per block of the exact search."""

    @field_validator("model", mode="after")
    @classmethod
    def _model_exists(cls, model: str, info: ValidationInfo) -> str:
        base_dir = context_base_dir(info)
        if base_dir is not None:
            as_field_error(lambda field: resolve_model(model, base_dir, field))
        return model


class Dense(FirstStage):
    """Bi-encoder retrieval (e.g. ``model: packaged:all-minilm-l6-v2``)."""

    key = "dense"
    Params = DenseParams
    params: DenseParams

    def __init__(self, params: DenseParams | Mapping[str, Any] | None, *, base_dir: Path,
                 field: str | None = None):
        super().__init__(params, base_dir=base_dir, field=field)
        self.model_path = resolve_model(self.params.model, base_dir, f"{self.field}.model")
        self._model = None
        self._index: tuple[list[str], np.ndarray, np.ndarray] | None = None
        self.cache_info: dict[str, Any] = {}

    @property
    def cache_dir(self) -> Path:
        """``cache_dir`` param (relative to the config), else the default cache location."""
        raw = self.params.cache_dir
        if raw is None:
            return default_cache_dir()
        path = Path(raw).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            from rerank_eval.models import resolve_device

            device = str(resolve_device(self.params.device))
            self._model = load_pretrained(SentenceTransformer, self.model_path,
                                          f"{self.field}.model", device=device)
        if self.params.max_length:
            self._model.max_seq_length = int(self.params.max_length)
        return self._model

    def describe(self) -> dict[str, Any]:
        out = {"kind": self.key, **self.params.model_dump(), "model_path": self.model_path,
               "similarity": "cosine" if self.params.normalize else "dot product",
               "search": "exact (chunked matrix product)"}
        if self._model is not None:
            out["max_length"] = int(self._model.max_seq_length)
            out["device"] = str(self._model.device)
        if self.cache_info:
            out["corpus_embeddings"] = dict(self.cache_info)
        return out

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 embeddings, one row per text."""
        emb = self.model.encode(list(texts), batch_size=int(self.params.batch_size),
                                normalize_embeddings=bool(self.params.normalize),
                                convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(emb, dtype=np.float32)

    def corpus_embeddings(self, doc_ids: list[str], texts: list[str]) -> np.ndarray:
        """The corpus matrix, from the cache when an entry for this model and corpus exists."""
        model = self.model
        settings = {"model": model_fingerprint(self.model_path),
                    "max_length": int(model.max_seq_length),
                    "normalize": bool(self.params.normalize), "dtype": "float32",
                    "format": CACHE_FORMAT}
        if not self.params.cache:
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
        logger.info(f"dense: embedding {len(texts)} documents with {self.params.model} "
                    f"(cache miss; will cache in {entry.folder})")
        info = {"model": str(self.params.model), "model_path": self.model_path,
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
                                 chunk_size=int(self.params.chunk_size))
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

