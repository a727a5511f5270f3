"""Batched, length-bucketed scoring of (query, passage) pairs with a sequence classifier.

Why it is shaped this way (CPU and GPU alike, compute dominates):
- Pairs are tokenized once, without padding (query first, passage second, only the passage
  truncated; ``encoding.py``), then sorted by their real token length so each batch pads to a
  near-equal length.
  Large inputs are tokenized in chunks (approximately length-ordered by characters) on a
  background thread while the model runs on the previous chunk; the fast tokenizer releases
  the GIL, so on a GPU tokenization hides behind compute.
- Batches are capped both by pairs (``batch_size``) and by tokens (``max_tokens_per_batch``), so a
  batch of long passages never needs more memory than a batch of short ones.
- Forward passes run under ``torch.inference_mode``; half precision is autocast over fp32
  weights on a CPU (bf16 where native) and cast weights on a GPU (see ``CrossEncoder._load``);
  optionally through ``torch.compile(dynamic=True)``. On CUDA, each batch is one pinned
  (channel, row, position) array copied without blocking, the forward pass is replayed as a
  CUDA graph (``cuda_graphs.py``), and scores stay on the device until the end. A CUDA
  out-of-memory error halves the batch and continues (eagerly).
- Scores are scattered back to input order.
"""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from rerank_eval.errors import InputError
from rerank_eval.scoring.cuda_graphs import CudaGraphs
from rerank_eval.scoring.encoding import CHANNELS, Encoded, PairEncoder

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


#: Environment override of native-bf16 detection: ``1`` or ``0`` forces what ``dtype: auto``
#: resolves to on a CPU, so tests (and users) can run either branch on any machine. A forced
#: ``1`` on a CPU without native bf16 is correct but slow (oneDNN emulates bf16).
NATIVE_BF16_ENV = "RERANK_EVAL_NATIVE_BF16"


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AVX512-BF16 or AMX), or when
    ``RERANK_EVAL_NATIVE_BF16`` says so. Without it oneDNN emulates bf16, which on this
    project's Ice Lake test machine is ~2.5x *slower* than fp32."""
    forced = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if forced in {"0", "1"}:
        return forced == "1"
    if forced:
        raise InputError(f"{NATIVE_BF16_ENV}: expected 0 or 1, got {forced!r}")
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

    Why bf16 on a CPU with native bf16: measured on 2 cores of an AMX Xeon (SciFact BM25
    top-100, the scoring head kept in fp32), 2.7x the fp32 peer with per-query Kendall tau
    0.993 and nDCG@10 equal to fp32's; fp16 there was no faster than fp32. Without native bf16
    (AVX512-BF16 or AMX) bf16 is emulated and slower than fp32.
    """
    dtype = DTYPE_ALIASES.get(dtype, dtype)
    if dtype == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    if dtype not in DTYPES:
        raise InputError(f"dtype: unknown dtype {dtype!r} (use auto, {', '.join(DTYPES)})")
    return DTYPES[dtype]


#: Relative agreement promised between two computations of one score on the same model and
#: dtype that differ only in reduction order (intra-op thread count, executor, batch shapes):
#: |a - b| <= tolerance * max(1, |a|). fp32: far above the ~1e-7 seen between 1 and 2 threads;
#: half precision: one step of bf16 (2**-7) or fp16 (2**-10) at 1.0. README, "Reproducibility".
AGREEMENT_TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2.0**-7, torch.float16: 2.0**-10}


def agreement_tolerance(dtype: torch.dtype) -> float:
    """The relative tolerance scores computed in ``dtype`` agree within across thread counts."""
    return AGREEMENT_TOLERANCE.get(dtype, AGREEMENT_TOLERANCE[torch.float32])


class PairScorer:
    """Scores pairs with a tokenizer and a model whose output is one score per pair.

    ``head`` maps the model's logits (batch x labels) to one score per pair. ``dtype`` bf16/fp16
    runs an fp32 model under autocast, or a model already cast to it as it is; ``compiled``
    swaps the forward for ``torch.compile(model, dynamic=True)`` on first use; ``cuda_graphs``
    (default: on a CUDA device, eager, not autocast) replays the forward as CUDA graphs.
    """

    #: Pairs tokenized per background chunk when tokenization overlaps compute.
    chunk_pairs = 1024

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
        cuda_graphs: bool | None = None,
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
        self.encoder = PairEncoder(tokenizer, max_length)
        self.pad_id = int(tokenizer.pad_token_id or 0)
        params = [p.dtype for p in model.parameters()]  # a quantized model may have none left
        self.autocast = dtype != torch.float32 and (not params or params[0] == torch.float32)
        self.pin = device.type == "cuda"
        self.oom_halvings = 0
        self.quantized = quantized
        self.compiled = False
        self.compile_error: str | None = None
        self._compile_checked = False
        self._forward: Callable[..., torch.Tensor] = model
        if cuda_graphs is None:
            cuda_graphs = device.type == "cuda" and not self.autocast and not compiled
        self.graphs: CudaGraphs | None = None
        self.graphs_error: str | None = None
        if cuda_graphs:
            self.graphs = CudaGraphs(self._scores, device)
        if compiled:
            self.compile()

    # ---------------------------------------------------------------- paths
    def compile(self) -> None:
        """Route forward passes through ``torch.compile(dynamic=True)`` (compiles lazily on the
        first batch; shapes vary with every batch, hence dynamic). Replaces CUDA graphs."""
        if not self.compiled:
            self._forward = torch.compile(self.model, dynamic=True)
            self.compiled = True
            self.graphs = None

    @property
    def path(self) -> str:
        """Which path scores pairs, e.g. ``cpu/bfloat16-autocast/compiled``."""
        precision = "int8-dynamic" if self.quantized else str(self.dtype).replace("torch.", "")
        precision += "-autocast" if self.autocast else ""
        mode = "compiled" if self.compiled else "cuda-graphs" if self.graphs else "eager"
        return f"{self.device.type}/{precision}/{mode}"

    # ---------------------------------------------------------------- tokenization
    def _encoded_chunks(self, pairs: Sequence[tuple[str, str]]) -> Iterator[Encoded]:
        """All pairs encoded at once, or (``overlap``) in character-length-ordered chunks, the
        next one tokenized on a worker thread while the caller computes on this one."""
        n = len(pairs)
        if not self.overlap or n <= self.chunk_pairs:
            yield self.encode(pairs)
            return
        queries = self.encoder.queries([q for q, _ in pairs])
        lengths = np.fromiter((len(q) + len(p) for q, p in pairs), dtype=np.int64, count=n)
        order = np.argsort(-lengths, kind="stable")
        # The first chunk is tokenized before the model has work: start small (the pipeline
        # fills sooner), then double up to ``chunk_pairs``.
        chunks, start, size = [], 0, min(128, self.chunk_pairs)
        while start < n:
            chunks.append(order[start : start + size])
            start, size = start + size, min(2 * size, self.chunk_pairs)
        # Two chunks in flight: one in the Rust tokenizer (all cores, no GIL) while the other's
        # ids are read into arrays (GIL), so the Python part does not idle the cores.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="tokenize") as pool:
            pending: deque[Future[Encoded]] = deque()
            for chunk in chunks:
                pending.append(pool.submit(self.encoder.encode, pairs, chunk, queries))
                if len(pending) > 2:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def encode(self, pairs: Sequence[tuple[str, str]]) -> Encoded:
        """Every pair encoded, in input order (what the engine feeds the model)."""
        queries = self.encoder.queries([q for q, _ in pairs])
        return self.encoder.encode(pairs, np.arange(len(pairs)), queries)

    # ---------------------------------------------------------------- batching
    def plan_batches(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Positions (into ``lengths``) of each batch: longest first, at most ``batch_size``
        pairs and, when set, at most ``max_tokens_per_batch`` padded tokens."""
        order = np.argsort(-lengths, kind="stable")
        batches: list[np.ndarray] = []
        start, n = 0, len(order)
        while start < n:
            size = min(self._rows_cap(self._width(int(lengths[order[start]]))), n - start)
            batches.append(order[start : start + size])  # sorted: the first is the longest
            start += size
        return batches

    def _width(self, longest: int) -> int:
        """Padded width of a batch whose longest pair has ``longest`` tokens."""
        return self.graphs.width(longest, self.max_length) if self.graphs else longest

    def _rows_cap(self, width: int) -> int:
        """Most pairs of padded length ``width`` one batch may hold now."""
        cap = self.batch_size
        if self.max_tokens_per_batch:
            cap = min(cap, self.max_tokens_per_batch // max(1, width))
        return max(1, cap)

    def batch(self, enc: Encoded, rows: np.ndarray) -> torch.Tensor:
        """One padded batch as (channel, row, position), in pinned memory when bound for a
        GPU; shaped for a CUDA graph when graphs are on."""
        width = self._width(int(enc.lengths[rows].max()))
        height = self.graphs.rows(len(rows), self._rows_cap(width)) if self.graphs else len(rows)
        out = torch.empty((enc.channels, height, width), dtype=torch.int64, pin_memory=self.pin)
        enc.pad(rows, width, self.pad_id, height, out=out.numpy())
        return out

    def _scores(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The model's scores for one batch already on its device."""
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.autocast):
            logits = self._call_model(inputs)
        return self.head(logits).float()

    def forward(self, batch: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """Scores (on the model's device) of the first ``rows`` pairs of a packed batch, on the
        host or the device. A CUDA out-of-memory error halves the batch (and the caps for every
        later batch), turns CUDA graphs off, and carries on."""
        rows = batch.shape[1] if rows is None else rows
        if self.graphs is not None:
            try:
                scores = self.graphs(batch)
            except Exception as e:  # noqa: BLE001 - a model that cannot be captured (or no
                # memory left to capture it) runs eagerly
                self.graphs, self.graphs_error = None, _error_line(e)
                torch.cuda.synchronize(self.device)
                torch.cuda.empty_cache()
                return self.forward(batch[:, :rows])
            if scores is not None:
                return scores[:rows]
        batch = batch[:, :rows]
        width = batch.shape[2]
        cap = self._rows_cap(width)
        if rows > cap:  # planned before an OOM lowered the caps
            return torch.cat([self.forward(batch[:, s : s + cap]) for s in range(0, rows, cap)])
        inputs = batch.to(self.device, non_blocking=True)
        try:
            return self._scores({name: inputs[i] for i, name in enumerate(CHANNELS[:len(inputs)])})
        except torch.cuda.OutOfMemoryError:
            if rows == 1:
                raise
            del inputs
            torch.cuda.empty_cache()
            self.oom_halvings += 1
            self.batch_size = max(1, rows // 2)
            if self.max_tokens_per_batch:
                self.max_tokens_per_batch = max(1, rows * width // 2)
        return self.forward(batch)

    def _call_model(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits; a compile that fails on its first batch falls back to eager (and says so)."""
        if not self.compiled or self._compile_checked:
            return self._forward(**inputs).logits
        try:
            logits = self._forward(**inputs).logits
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as e:  # noqa: BLE001 - inductor needs a C++ compiler; eager still works
            self.compile_error = _error_line(e)
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
        pieces: list[tuple[np.ndarray, torch.Tensor]] = []
        with torch.inference_mode():
            for enc in self._encoded_chunks(pairs):
                self.last_truncated[enc.truncated_index] = True
                for rows in self.plan_batches(enc.lengths):
                    pieces.append((enc.index[rows], self.forward(self.batch(enc, rows),
                                                                 len(rows))))
        # One device-to-host copy at the end: no per-batch synchronisation on a GPU.
        flat = torch.cat([s for _, s in pieces]).cpu().numpy()
        out[np.concatenate([i for i, _ in pieces])] = flat
        return out, int(self.last_truncated.sum())


def _error_line(e: Exception) -> str:
    """An exception as one short line, for results.json."""
    first = str(e).splitlines()[0][:200] if str(e) else ""
    return f"{type(e).__name__}: {first}"
