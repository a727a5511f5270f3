"""Batched, length-bucketed scoring of (query, passage) pairs with a sequence classifier.

Why it is shaped this way (CPU and GPU alike, compute dominates):
- Pairs are tokenized once, without padding (query first, passage second; a query over half
  the window is cut to that half, then the passage fills the rest; ``encoding.py``), then
  sorted by their real token length so each batch pads to a near-equal length.
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

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from rerank_eval.engine.cuda_graphs import CudaGraphs
from rerank_eval.engine.encoding import CHANNELS, Encoded, PairEncoder


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
        self._forward: Callable[..., Any] = model  # a model: its output has .logits
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
