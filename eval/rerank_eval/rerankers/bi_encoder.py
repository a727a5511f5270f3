"""Bi-encoder baseline: rescore the shortlist by cosine similarity of embeddings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch

from rerank_eval.errors import InputError
from rerank_eval.models import (
    DTYPE_ALIASES,
    Device,
    check_model_available,
    cpu_has_native_bf16,
    load_pretrained,
    model_identity,
    resolve_device,
    resolve_dtype,
    resolve_model,
)
from rerank_eval.params import NonEmptyStr, PositiveInt, expected
from rerank_eval.rerankers.base import Reranker, RerankerParams

#: The cross-encoder's dtypes but int8 (no quantized path here).
BiEncoderDType = Annotated[Literal["auto", "float32", "bfloat16", "float16", "fp32", "bf16",
                                   "fp16"],
                           expected("auto, float32, bfloat16, float16 (or fp32, bf16, fp16)")]


class BiEncoderParams(RerankerParams):
    """``kind: bi-encoder``: a sentence-transformers model; score = cosine similarity."""

    model: NonEmptyStr
    """A local folder (relative to the config), a hub id, or packaged:all-minilm-l6-v2."""
    batch_size: PositiveInt = 64
    max_length: PositiveInt | None = None
    """Tokens per text (default: the model's)."""
    device: Device = "auto"
    dtype: BiEncoderDType = "auto"
    """auto: as the cross-encoder (fp16 on a GPU, bf16 on a CPU with native bf16, else fp32)."""


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
    def device(self) -> torch.device:
        return resolve_device(self.params.device)

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype, resolved as the cross-encoder's (``models.resolve_dtype``)."""
        return resolve_dtype(self.params.dtype, self.device)

    @property
    def model(self):
        """sentence-transformers model: on a GPU in half precision (weights cast once), on a
        CPU in fp32 weights with bf16 autocast around encoding (see :meth:`_encode`)."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            device, dtype = self.device, self.dtype
            if device.type == "cpu" and dtype == torch.float16:
                raise InputError(f"rerankers[{self.name}].dtype: float16 runs on a GPU only "
                                 "(on a CPU: auto, bfloat16 or float32)")
            weights = dtype if device.type == "cuda" else torch.float32
            self._model = load_pretrained(SentenceTransformer, self.model_path, self.field,
                                          device=str(device),
                                          model_kwargs={"dtype": weights})
            if self.params.max_length:
                self._model.max_seq_length = int(self.params.max_length)
        return self._model

    def _autocast(self):
        if self.device.type == "cpu" and self.dtype == torch.bfloat16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return nullcontext()

    def describe(self) -> dict[str, Any]:
        dtype = self.dtype
        autocast = self.device.type == "cpu" and dtype == torch.bfloat16
        return {**super().describe(), "model_path": self.model_path,
                "max_length": int(self.model.max_seq_length),
                "device": str(self.model.device), "dtype": _name(dtype),
                "dtype_requested": self.params.dtype, "autocast": autocast,
                "cpu_native_bf16": cpu_has_native_bf16()}

    def fingerprint(self) -> dict[str, Any]:
        """Weights (content hash), max_length and the compute dtype as resolved here (bf16
        and fp32 embeddings differ), as the cross-encoder's."""
        dtype = DTYPE_ALIASES.get(self.params.dtype, self.params.dtype)
        if dtype == "auto":
            dtype = _name(self.dtype)
        return {**super().fingerprint(), "model": model_identity(self.model_path),
                "dtype": dtype}

    def _encode(self, texts: list[str]) -> np.ndarray:
        with self._autocast():
            emb = self.model.encode(texts, batch_size=int(self.params.batch_size),
                                    normalize_embeddings=True, convert_to_tensor=True,
                                    show_progress_bar=False)
        return emb.float().cpu().numpy()  # fp32 whatever the compute dtype: as fp32 ran before

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

    def queries_truncated(self, queries: Sequence[str]) -> int:
        """Queries longer than the model's window (each text is embedded alone, cut to it)."""
        unique = list(dict.fromkeys(queries))
        if not unique:
            return 0
        limit = int(self.model.max_seq_length)
        ids = self.model.tokenizer(unique, add_special_tokens=True)["input_ids"]
        return sum(len(x) > limit for x in ids)

    def preflight(self) -> None:
        check_model_available(self.model_path, self.field)

    def close(self) -> None:
        self._model = None


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")
