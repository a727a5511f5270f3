"""Batched, length-bucketed scoring of (query, passage) pairs with a sequence classifier.

Why it is shaped this way (CPU and GPU alike, compute dominates):
- Pairs are tokenized once, without padding (query first, passage second, only the passage
  truncated), then sorted by their real token length so each batch pads to a near-equal length.
  Large inputs are tokenized in chunks (approximately length-ordered by characters) on a
  background thread while the model runs on the previous chunk; the fast tokenizer releases
  the GIL, so on a GPU tokenization hides behind compute.
- Batches are capped both by pairs (``batch_size``) and by tokens (``max_tokens_per_batch``), so a
  batch of long passages never needs more memory than a batch of short ones.
- Forward passes run under ``torch.inference_mode``; half precision is autocast over fp32
  weights on a CPU (bf16 where native) and cast weights on a GPU (see ``CrossEncoder._load``);
  optionally through ``torch.compile(dynamic=True)``. On CUDA, batches are built in pinned
  memory and copied without blocking; scores stay on the device until the end. A CUDA
  out-of-memory error halves the batch and continues.
- Scores are scattered back to input order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from rerank_eval.errors import InputError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


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


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (``/proc/cpuinfo``, as ``lscpu`` shows them)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AVX512-BF16 or AMX). Without it oneDNN
    emulates bf16, which on this project's Ice Lake test machine is ~2.5x *slower* than fp32."""
    flags = cpu_flags()
    if flags:
        return bool({"avx512_bf16", "amx_bf16"} & flags)
    try:  # no /proc/cpuinfo (macOS, Windows): ask torch
        return torch.backends.cpu.get_cpu_capability() in {"AVX512_BF16", "AMX"}
    except Exception:  # noqa: BLE001 - capability probing must never fail a run
        return False


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: fp16 on a GPU, bf16 on a CPU that computes it natively, else fp32.

    Why fp16 rather than bf16 on a GPU: measured with ``rerank-eval bench`` on an H200
    (benchmarks/), fp16 kept rankings faithful (per-query Kendall tau >= 0.998, nDCG@10 equal
    to fp32's on DL19 and SciFact) and was as fast as bf16, whose 8-bit mantissa did not
    (tau 0.9875 on SciFact, nDCG@10 -0.0026 on DL19). A model whose activations overflow fp16
    is caught (non-finite scores) and named; ``dtype: bfloat16`` is then the fast choice.
    """
    dtype = DTYPE_ALIASES.get(dtype, dtype)
    if dtype == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    if dtype not in DTYPES:
        raise InputError(f"dtype: unknown dtype {dtype!r} (use auto, {', '.join(DTYPES)})")
    return DTYPES[dtype]


def _window_ends_before(encoding, position: int) -> bool:
    """The encoding was truncated and its last passage token ends before ``position``."""
    if not encoding.overflowing:
        return False
    last = len(encoding.ids) - 2  # [CLS] q [SEP] p [SEP] and <s> q </s></s> p </s> alike
    if last < 0 or encoding.token_to_sequence(last) != 1:
        return False
    span = encoding.token_to_chars(last)
    return span is not None and span[1] <= position


def _pair_tokenizer(tokenizer, max_length: int):
    """An independent copy of a fast tokenizer's Rust backend that truncates pairs to
    ``max_length`` (passage only) and never pads."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.enable_truncation(max_length, stride=0, strategy="only_second", direction="right")
    return backend


@dataclass
class Encoded:
    """Unpadded token ids of some pairs, with where each came from."""

    index: np.ndarray  # positions in the caller's input
    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    truncated: int
    truncated_index: np.ndarray | None = None  # which positions of the caller's input were cut


class PairScorer:
    """Scores pairs with a tokenizer and a model whose output is one score per pair.

    ``head`` maps the model's logits (batch x labels) to one score per pair. ``dtype`` bf16/fp16
    runs an fp32 model under autocast, or a model already cast to it as it is; ``compiled``
    swaps the forward for ``torch.compile(model, dynamic=True)`` on first use.
    """

    #: Pairs tokenized per background chunk when tokenization overlaps compute.
    chunk_pairs = 1024
    #: Passages are cut (at a space) past this many characters per window token before
    #: tokenizing, and kept whole where the window comes within ``cut_margin_chars`` of the cut.
    cut_chars_per_token = 6
    cut_margin_chars = 100

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
        max_tokens_per_batch: int | None = None,
        compiled: bool = False,
        overlap: bool | None = None,
        quantized: bool = False,
    ):
        self.tokenizer = tokenizer
        self.model = model
        self.head = head
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.max_tokens_per_batch = max_tokens_per_batch
        self.overlap = device.type == "cuda" if overlap is None else overlap
        self.special_tokens = tokenizer.num_special_tokens_to_add(pair=True)
        # Keep at least half the window for the passage; longer queries are cut (and counted).
        self.max_query_tokens = max(1, (max_length - self.special_tokens) // 2)
        self.pad_id = int(tokenizer.pad_token_id or 0)
        self.uses_token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", [])
        # Pairs are encoded by a private copy of the Rust tokenizer, configured once: the same
        # ids as ``tokenizer(queries, passages, truncation="only_second")`` without the
        # per-pair Python objects transformers builds (measured: most of the tokenization
        # time on SciFact pairs, and what capped the engine on a GPU).
        self.pair_tokenizer = _pair_tokenizer(tokenizer, max_length)
        params = [p.dtype for p in model.parameters()]  # a quantized model may have none left
        self.autocast = dtype != torch.float32 and (not params or params[0] == torch.float32)
        self.pin = device.type == "cuda"
        self.oom_halvings = 0
        self.quantized = quantized
        self.compiled = False
        self.compile_error: str | None = None
        self._compile_checked = False
        self._forward: Callable[..., torch.Tensor] = model
        if compiled:
            self.compile()

    # ---------------------------------------------------------------- paths
    def compile(self) -> None:
        """Route forward passes through ``torch.compile(dynamic=True)`` (compiles lazily on the
        first batch; shapes vary with every batch, hence dynamic)."""
        if not self.compiled:
            self._forward = torch.compile(self.model, dynamic=True)
            self.compiled = True

    @property
    def path(self) -> str:
        """Which path scores pairs, e.g. ``cpu/bfloat16-autocast/compiled``."""
        precision = "int8-dynamic" if self.quantized else str(self.dtype).replace("torch.", "")
        precision += "-autocast" if self.autocast else ""
        return f"{self.device.type}/{precision}/{'compiled' if self.compiled else 'eager'}"

    # ---------------------------------------------------------------- tokenization
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
        """Approximate length of each pair in characters (only orders chunks; batches are
        ordered by real token length)."""
        return np.fromiter((len(q) + len(p) for q, p in pairs), dtype=np.int64, count=len(pairs))

    def encode(self, pairs: Sequence[tuple[str, str]], index: np.ndarray,
               trimmed: dict[str, str], cut: set[str]) -> Encoded:
        """Token ids (no padding) of ``pairs[index]``; counts pairs cut to ``max_length``."""
        encodings = self._encode_pairs([(trimmed[pairs[i][0]], pairs[i][1]) for i in index])
        cut_index = np.array([i for i, e in zip(index, encodings)
                              if e.overflowing or pairs[i][0] in cut], dtype=np.int64)
        types = [e.type_ids for e in encodings] if self.uses_token_types else None
        return Encoded(index, [e.ids for e in encodings], types, len(cut_index), cut_index)

    def _encode_pairs(self, texts: list[tuple[str, str]]) -> list:
        """Rust encodings of (query, passage) texts, identical to encoding them whole.

        Tokenizing a passage costs time in proportion to its whole length, though only the
        first ``max_length`` tokens are kept (on SciFact abstracts, tokenization was what
        limited the engine on a GPU). So a passage longer than ``cut_chars_per_token`` characters
        per window token is first cut at a space past that point. The cut is kept only where
        the window still ends at least ``cut_margin_chars`` before it (the window's tokens are
        then those of the whole passage: tokenization is local to words); any other pair is
        encoded again whole.
        """
        limit = self.cut_chars_per_token * self.max_length
        cut_at: dict[int, int] = {}
        batch = []
        for j, (query, passage) in enumerate(texts):
            if len(passage) > limit:
                space = passage.find(" ", limit)
                if space > 0:
                    cut_at[j] = space
                    passage = passage[:space]
            batch.append((query, passage))
        encodings = self.pair_tokenizer.encode_batch(batch, add_special_tokens=True)
        margin = self.cut_margin_chars
        redo = [j for j, cut in cut_at.items()
                if not _window_ends_before(encodings[j], cut - margin)]
        if redo:
            for j, enc in zip(redo, self.pair_tokenizer.encode_batch(
                    [texts[j] for j in redo], add_special_tokens=True)):
                encodings[j] = enc
        return encodings

    def _encoded_chunks(self, pairs: Sequence[tuple[str, str]]) -> Iterator[Encoded]:
        """All pairs encoded at once, or (``overlap``) in character-length-ordered chunks, the
        next one tokenized on a worker thread while the caller computes on this one."""
        n = len(pairs)
        trimmed, cut = self._trim_queries([q for q, _ in pairs])
        if not self.overlap or n <= self.chunk_pairs:
            yield self.encode(pairs, np.arange(n), trimmed, cut)
            return
        order = np.argsort(-self.lengths(pairs), kind="stable")
        # The first chunk is tokenized before the model has work: start small (the pipeline
        # fills sooner), then double up to ``chunk_pairs``.
        chunks, start, size = [], 0, min(128, self.chunk_pairs)
        while start < n:
            chunks.append(order[start : start + size])
            start, size = start + size, min(2 * size, self.chunk_pairs)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize") as pool:
            pending: Future[Encoded] = pool.submit(self.encode, pairs, chunks[0], trimmed, cut)
            for nxt in [*chunks[1:], None]:
                current = pending.result()
                if nxt is not None:
                    pending = pool.submit(self.encode, pairs, nxt, trimmed, cut)
                yield current

    # ---------------------------------------------------------------- batching
    def plan_batches(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Positions (into ``lengths``) of each batch: longest first, at most ``batch_size``
        pairs and, when set, at most ``max_tokens_per_batch`` padded tokens."""
        order = np.argsort(-lengths, kind="stable")
        batches: list[np.ndarray] = []
        start, n = 0, len(order)
        while start < n:
            size = min(self.batch_size, n - start)
            if self.max_tokens_per_batch:
                longest = int(lengths[order[start]])  # sorted: the first is the longest
                size = max(1, min(size, self.max_tokens_per_batch // max(1, longest)))
            batches.append(order[start : start + size])
            start += size
        return batches

    def _pad(self, enc: Encoded, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """One padded batch (right padding), in pinned memory when bound for a GPU."""
        width = max(len(enc.input_ids[r]) for r in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        types = np.zeros((len(rows), width), dtype=np.int64) if enc.token_type_ids else None
        for j, r in enumerate(rows):
            seq = enc.input_ids[r]
            ids[j, : len(seq)] = seq
            mask[j, : len(seq)] = 1
            if types is not None and enc.token_type_ids is not None:
                types[j, : len(seq)] = enc.token_type_ids[r]
        batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if types is not None:
            batch["token_type_ids"] = torch.from_numpy(types)
        if self.pin:
            batch = {k: v.pin_memory() for k, v in batch.items()}
        return batch

    def _rows_cap(self, width: int) -> int:
        """Most pairs of padded length ``width`` one batch may hold now."""
        cap = self.batch_size
        if self.max_tokens_per_batch:
            cap = min(cap, self.max_tokens_per_batch // max(1, width))
        return max(1, cap)

    def _run(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores of one padded batch (on the model's device). A CUDA out-of-memory error halves
        the batch (and the caps for every later batch) and carries on."""
        rows, width = batch["input_ids"].shape
        cap = self._rows_cap(width)
        if rows > cap:  # planned before an OOM lowered the caps
            return torch.cat([self._run({k: v[s : s + cap] for k, v in batch.items()})
                              for s in range(0, rows, cap)])
        inputs = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        try:
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.autocast):
                logits = self._call_model(inputs)
            return self.head(logits).float()
        except torch.cuda.OutOfMemoryError:
            if rows == 1:
                raise
            del inputs
            torch.cuda.empty_cache()
            self.oom_halvings += 1
            self.batch_size = max(1, rows // 2)
            if self.max_tokens_per_batch:
                self.max_tokens_per_batch = max(1, rows * width // 2)
        return self._run(batch)

    def _call_model(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits; a compile that fails on its first batch falls back to eager (and says so)."""
        if not self.compiled or self._compile_checked:
            return self._forward(**inputs).logits
        try:
            logits = self._forward(**inputs).logits
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as e:  # noqa: BLE001 - inductor needs a C++ compiler; eager still works
            first = str(e).splitlines()[0][:200] if str(e) else ""
            self.compile_error = f"{type(e).__name__}: {first}"
            self._forward, self.compiled = self.model, False
            logits = self.model(**inputs).logits
        self._compile_checked = True
        return logits

    # ---------------------------------------------------------------- scoring
    def score(self, pairs: Sequence[tuple[str, str]]) -> tuple[np.ndarray, int]:
        """Scores in input order and the number of pairs truncated to ``max_length``
        (which ones: ``self.last_truncated``, a boolean mask in input order)."""
        n = len(pairs)
        out = np.empty(n, dtype=np.float64)
        self.last_truncated = np.zeros(n, dtype=bool)
        if n == 0:
            return out, 0
        truncated = 0
        pieces: list[tuple[np.ndarray, torch.Tensor]] = []
        with torch.inference_mode():
            for enc in self._encoded_chunks(pairs):
                truncated += enc.truncated
                if enc.truncated_index is not None:
                    self.last_truncated[enc.truncated_index] = True
                lengths = np.fromiter(map(len, enc.input_ids), dtype=np.int64,
                                      count=len(enc.input_ids))
                for rows in self.plan_batches(lengths):
                    pieces.append((enc.index[rows], self._run(self._pad(enc, rows))))
        # One device-to-host copy at the end: no per-batch synchronisation on a GPU.
        flat = torch.cat([s for _, s in pieces]).cpu().numpy()
        out[np.concatenate([i for i, _ in pieces])] = flat
        return out, truncated
