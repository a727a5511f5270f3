"""``kind: listwise``: a model that orders a window of passages at once (RankGPT-style).

It does not score pairs independently, so instead of :meth:`Reranker.score` it has
:meth:`ListwiseReranker.rank` (a query's top-d in, their order out), which the scoring layer
calls once per query and depth (``rerank_eval.scoring.listwise``). One pass slides a window of
``window`` passages over the top-d back to front (``window.py``); each window's messages come
from the template (``template.py``), its answer from an OpenAI-compatible endpoint
(``base_url`` set, ``chat.py``) or a local causal LM (``local.py``), and is read with repair
(``parse.py``). Answers are looked up in and written to an :class:`AnswerStore` (the score
cache's window table) under the model's fingerprint and the exact messages.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rerank_eval.rerankers.base import Reranker
from rerank_eval.rerankers.listwise.chat import ChatBackend, Completion
from rerank_eval.rerankers.listwise.local import LocalBackend
from rerank_eval.rerankers.listwise.params import ListwiseParams
from rerank_eval.rerankers.listwise.parse import ParsedAnswer, parse_answer
from rerank_eval.rerankers.listwise.template import PRESETS, load_template
from rerank_eval.rerankers.listwise.window import shuffled, slide, window_spans


class AnswerStore(Protocol):
    """Where window answers are kept between runs (the score cache's window table)."""

    def get(self, key: bytes) -> str | None: ...

    def put(self, key: bytes, answer: str) -> None: ...


@dataclass
class WindowRecord:
    """One window of one pass: what the model answered and what it cost."""

    key: bytes  # SHA-256 of the window's exact messages (its cache key)
    parsed: ParsedAnswer
    from_cache: bool
    latency_ms: float | None = None  # None: from the cache
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass
class RankOutcome:
    order: list[int]  # positions of the input passages, best first
    windows: list[WindowRecord]


class ListwiseReranker(Reranker):
    """See the module docstring. ``score()`` is not available: pairs have no score alone."""

    kind = "listwise"
    Params = ListwiseParams
    params: ListwiseParams
    latency_probes = False  # every window is a generation (often billed): per-window latency

    def __init__(self, name: str, params: ListwiseParams | Mapping[str, Any] | None = None, *,
                 base_dir: Path):
        super().__init__(name, params, base_dir=base_dir)
        self.field = f"rerankers[{name}]"
        p = self.params
        self.template = load_template(p.template, base_dir, f"{self.field}.template")
        self.backend: ChatBackend | LocalBackend
        if p.base_url is not None:
            self.backend = ChatBackend(p, self.field)
        else:
            self.backend = LocalBackend(p, base_dir, f"{self.field}.model")
        self.concurrency = p.concurrency if isinstance(self.backend, ChatBackend) else 1
        self._identity: dict[str, str] | None = None
        self._lock = threading.Lock()  # queries are ranked on several threads

    # -- what it is ------------------------------------------------------------------------
    @property
    def backend_name(self) -> str:
        return "chat" if isinstance(self.backend, ChatBackend) else "local"

    def describe(self) -> dict[str, Any]:
        p = self.params
        out = {**super().describe(), "backend": self.backend_name, "window": p.window,
               "stride": p.stride, "passes": p.passes,
               "template": p.template if p.template in PRESETS else Path(p.template).name,
               "template_sha256": self.template.digest(),
               "max_passage_words": p.max_passage_words, "shuffle_input": p.shuffle_input,
               "temperature": p.temperature, "max_output_tokens": p.max_output_tokens,
               "order": "sliding window back to front; ranks become scores d, d-1, ..., 1"}
        if isinstance(self.backend, ChatBackend):
            out.update(endpoint=self.backend.endpoint, api_key_env=p.api_key_env,
                       concurrency=self.concurrency,
                       requests_per_minute=p.requests_per_minute,
                       tokens_per_minute=p.tokens_per_minute)
        else:
            out.update(device=str(self.backend.device),
                       dtype=str(self.backend.dtype).replace("torch.", ""))
        return out

    def fingerprint(self) -> dict[str, Any]:
        """The model that answers (the window's messages are the rest of the cache key)."""
        p = self.params
        fp: dict[str, Any] = {"kind": self.kind, "model": p.model,
                              "temperature": p.temperature,
                              "max_output_tokens": p.max_output_tokens}
        if isinstance(self.backend, ChatBackend):
            fp["base_url"] = self.backend.base_url
        else:
            if self._identity is None:
                self._identity = self.backend.identity()
            fp.update(self._identity, dtype=str(self.backend.dtype))
        return fp

    def preflight(self) -> None:
        if isinstance(self.backend, LocalBackend):
            self.backend.preflight()

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        raise TypeError(f"{self.field}: a listwise reranker orders windows of passages; it "
                        "has no score for a pair alone (use rank())")

    # -- ranking ---------------------------------------------------------------------------
    def windows_per_query(self, depth: int) -> int:
        """Requests one query costs at ``depth`` without the cache."""
        p = self.params
        return len(window_spans(depth, p.window, p.stride)) * p.passes

    def rank(self, query: str, passages: Sequence[str], *, store: AnswerStore | None = None,
             label: str = "") -> RankOutcome:
        """Order ``passages`` (a query's top-d, first-stage order): ``passes`` sliding-window
        passes, each window's answer from ``store`` when it has it."""
        p = self.params
        texts = [" ".join(t.split()[:p.max_passage_words]) for t in passages]
        spans = window_spans(len(texts), p.window, p.stride)
        records: list[WindowRecord] = []
        order = list(range(len(texts)))
        for pass_no in range(p.passes):
            def rank_window(number: int, part: list[int], pass_no: int = pass_no) -> list[int]:
                perm = (shuffled(len(part), p.shuffle_input, query, pass_no, number,
                                 *(texts[i] for i in part))
                        if p.shuffle_input is not None else list(range(len(part))))
                shown = [texts[part[j]] for j in perm]
                where = (f"{label}, pass {pass_no + 1}, window {number + 1} of {len(spans)}")
                record = self._window(query, shown, store, where)
                records.append(record)
                return [perm[j] for j in record.parsed.order]

            order = slide(order, spans, rank_window)
        return RankOutcome(order, records)

    def _window(self, query: str, shown: list[str], store: AnswerStore | None,
                where: str) -> WindowRecord:
        messages = self.template.messages(query, shown)
        key = hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False)
                             .encode("utf-8", "surrogatepass")).digest()
        cached = store.get(key) if store is not None else None
        if cached is not None:
            with self._lock:
                self.stats.pairs_from_cache += len(shown)
            return WindowRecord(key, parse_answer(cached, len(shown)), from_cache=True)
        done: Completion
        if isinstance(self.backend, ChatBackend):
            done = self.backend.complete(messages, f"listwise reranker {self.name!r}, {where}")
        else:
            done = self.backend.complete(messages, len(shown))
        if store is not None:
            store.put(key, done.text)
        with self._lock:
            self.stats.pairs_scored += len(shown)
        return WindowRecord(key, parse_answer(done.text, len(shown)), from_cache=False,
                            latency_ms=done.latency_ms, input_tokens=done.input_tokens,
                            output_tokens=done.output_tokens)

    # -- cost ------------------------------------------------------------------------------
    def reset_usage(self) -> None:
        """Start counting requests and tokens afresh (each sweep cell reports its own)."""
        if isinstance(self.backend, ChatBackend):
            self.backend.usage.clear()
            self.backend.retry_reasons.clear()

    def usage(self) -> dict[str, Any]:
        """``usage`` (requests, retries, tokens), ``price`` and ``cost_usd`` for results.json
        (chat backend; the local model's token counts come from its windows)."""
        if not isinstance(self.backend, ChatBackend):
            return {}
        usage: dict[str, Any] = {k: 0 for k in ("requests", "attempts", "retries",
                                                "input_tokens", "output_tokens",
                                                "requests_without_usage")}
        usage.update(self.backend.usage)
        usage["retry_reasons"] = dict(self.backend.retry_reasons)
        price = self.params.price
        cost = None
        if price is not None:
            cost = (usage["input_tokens"] / 1e6 * price.per_1m_input_tokens
                    + usage["output_tokens"] / 1e6 * price.per_1m_output_tokens)
        return {"usage": usage, "price": None if price is None else price.model_dump(),
                "cost_usd": cost}

    def close(self) -> None:
        self.backend.close()
