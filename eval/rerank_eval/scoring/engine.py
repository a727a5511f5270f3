"""Batched, length-sorted scoring of (query, passage) pairs with a sequence classifier.

Pairs are sorted by approximate token length so each batch pads little, tokenized with only
the passage truncated (query first, passage second), run under ``torch.inference_mode`` and
scattered back to input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from rerank_eval.errors import InputError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InputError(f"device: unknown device {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device: {device!r} requested but CUDA is not available")
    return dev


def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.backends.cpu.get_cpu_capability() in {"AVX512_BF16", "AMX"}) or bool(
            getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        )
    except Exception:  # noqa: BLE001 - capability probing must never fail a run
        return False


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 where the hardware computes it natively, else fp16 on GPU, else fp32."""
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    if dtype not in DTYPES:
        raise InputError(f"dtype: unknown dtype {dtype!r} (use auto, {', '.join(DTYPES)})")
    return DTYPES[dtype]


class PairScorer:
    """Scores pairs with a tokenizer and a model whose output is one score per pair.

    ``head`` maps the model's logits (batch x labels) to one score per pair.
    """

    def __init__(
        self,
        tokenizer,
        model: torch.nn.Module,
        *,
        head: Callable[[torch.Tensor], torch.Tensor],
        max_length: int,
        batch_size: int,
        device: torch.device,
        dtype: torch.dtype,
    ):
        self.tokenizer = tokenizer
        self.model = model
        self.head = head
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.special_tokens = tokenizer.num_special_tokens_to_add(pair=True)
        # Keep at least half the window for the passage; longer queries are cut (and counted).
        self.max_query_tokens = max(1, (max_length - self.special_tokens) // 2)

    def _trim_queries(self, queries: Sequence[str]) -> tuple[dict[str, str], set[str]]:
        """Over-long queries cut to ``max_query_tokens`` at a token boundary."""
        unique = list(dict.fromkeys(queries))
        enc = self.tokenizer(unique, add_special_tokens=False, return_offsets_mapping=True)
        trimmed: dict[str, str] = {}
        cut: set[str] = set()
        for q, offsets in zip(unique, enc["offset_mapping"]):
            if len(offsets) > self.max_query_tokens:
                trimmed[q] = q[: offsets[self.max_query_tokens - 1][1]]
                cut.add(q)
            else:
                trimmed[q] = q
        return trimmed, cut

    def lengths(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Approximate token length of each pair (characters / 4 is enough to sort)."""
        return np.fromiter((len(q) + len(p) for q, p in pairs), dtype=np.int64, count=len(pairs))

    def score(self, pairs: Sequence[tuple[str, str]]) -> tuple[np.ndarray, int]:
        """Scores in input order and the number of pairs truncated to ``max_length``."""
        n = len(pairs)
        out = np.empty(n, dtype=np.float64)
        if n == 0:
            return out, 0
        trimmed, cut = self._trim_queries([q for q, _ in pairs])
        order = np.argsort(-self.lengths(pairs), kind="stable")
        truncated = 0
        autocast = self.dtype != torch.float32 and self.model.dtype == torch.float32
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                queries = [trimmed[pairs[i][0]] for i in idx]
                passages = [pairs[i][1] for i in idx]
                enc = self.tokenizer(
                    queries, passages, truncation="only_second", max_length=self.max_length,
                    padding=True, return_tensors="pt",
                )
                truncated += sum(
                    1 for i, e in zip(idx, enc.encodings) if e.overflowing or pairs[i][0] in cut
                )
                inputs = {k: v.to(self.device, non_blocking=True) for k, v in enc.items()}
                with torch.autocast(self.device.type, dtype=self.dtype, enabled=autocast):
                    logits = self.model(**inputs).logits
                out[idx] = self.head(logits).float().cpu().numpy()
        return out, truncated
