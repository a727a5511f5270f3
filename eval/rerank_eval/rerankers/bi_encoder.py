"""Bi-encoder baseline: rescore the shortlist by cosine similarity of embeddings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rerank_eval.models import (
    Device,
    check_model_available,
    load_pretrained,
    model_identity,
    resolve_device,
    resolve_model,
)
from rerank_eval.params import NonEmptyStr, PositiveInt
from rerank_eval.rerankers.base import Reranker, RerankerParams


class BiEncoderParams(RerankerParams):
    """``kind: bi-encoder``: a sentence-transformers model; score = cosine similarity."""

    model: NonEmptyStr
    """A local folder (relative to the config), a hub id, or packaged:all-minilm-l6-v2."""
    batch_size: PositiveInt = 64
    max_length: PositiveInt | None = None
    """Tokens per text (default: the model's)."""
    device: Device = "auto"


class BiEncoder(Reranker):
    """Embeds queries and passages separately (sentence-transformers), scores by cosine."""

    kind = "bi-encoder"
    Params = BiEncoderParams
    params: BiEncoderParams

    score_params = ("max_length",)

    def __init__(self, name: str, params: BiEncoderParams | Mapping[str, Any], *,
                 base_dir: Path):
        super().__init__(name, params, base_dir=base_dir)
        self.field = f"rerankers[{name}].model"
        self.model_path = resolve_model(self.params.model, base_dir, self.field)
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            device = str(resolve_device(self.params.device))
            self._model = load_pretrained(SentenceTransformer, self.model_path, self.field,
                                          device=device)
            if self.params.max_length:
                self._model.max_seq_length = int(self.params.max_length)
        return self._model

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model_path": self.model_path,
                "max_length": int(self.model.max_seq_length),
                "device": str(self.model.device)}

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "model": model_identity(self.model_path)}

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=int(self.params.batch_size),
                                 normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False)

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        if not pairs:
            self.last_truncated = np.zeros(0, dtype=bool)
            return np.empty(0)
        queries = list(dict.fromkeys(q for q, _ in pairs))
        passages = list(dict.fromkeys(p for _, p in pairs))
        q_emb = dict(zip(queries, self._encode(queries)))
        p_emb = dict(zip(passages, self._encode(passages)))
        limit = int(self.model.max_seq_length)
        lengths = self.model.tokenizer(passages, add_special_tokens=True)["input_ids"]
        too_long = {p for p, ids in zip(passages, lengths) if len(ids) > limit}
        self.last_truncated = np.array([p in too_long for _, p in pairs], dtype=bool)
        self.stats.pairs_truncated += int(self.last_truncated.sum())
        self.stats.pairs_scored += len(pairs)
        return np.array([float(np.dot(q_emb[q], p_emb[p])) for q, p in pairs], dtype=np.float64)

    def preflight(self) -> None:
        check_model_available(self.model_path, self.field)

    def close(self) -> None:
        self._model = None
