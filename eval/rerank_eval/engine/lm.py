"""Pointwise scoring with language models: a prompt per (query, document), the score read
from the logits of two answer tokens ("yes"/"no", "true"/"false").

Causal LMs (:class:`CausalLMScorer`): score = logit(yes) - logit(no) at the prompt's last
position (or their log-softmax, or logit(yes) alone where a card reads one token). Only the
two rows of the output embedding are computed, in fp32, from the final hidden state (the full
vocabulary head at every position, as ``model(...).logits`` does, is a quarter of a 0.6B
model's work and none of it is needed). Two paths give the same scores up to float noise:

- *full*: every prompt whole, left-padded (explicit position ids, so padding changes no
  position), batches of near-equal length (sorted by real token length, capped by pairs and
  by padded tokens), as the cross-encoder engine batches;
- *prefix reuse* (default): the key/value cache of the template's static prefix (system
  prompt, instruction) is computed once, that of each query's part once per query on top of
  it, and each candidate's remaining tokens (document + suffix) are scored against its
  query's cache, batched across queries by their own length as the full path batches
  (right-padded; the score is read at each row's last real token).

Seq2seq models (:class:`Seq2SeqScorer`, monoT5): the encoder reads the prompt, the decoder
one start token; score = logit(true) - logit(false) of that first step. The encoder is
bidirectional, so nothing is shared between candidates.

Precision: ``dtype`` bf16/fp16 runs the body under autocast over fp32 weights; the final norm
and the two-token head run in fp32 (``fp32_head``).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from rerank_eval.engine.prompts import EncodedPrompts, PromptEncoder

SCORES = ("logit", "log_softmax")


def fp32_outside_autocast(module: torch.nn.Module, device_type: str) -> None:
    """Run ``module`` in fp32 on fp32 inputs, whatever autocast or cast weights say.

    Why: a logit difference computed in bf16 has 8 significant bits, so close candidates tie
    (the cross-encoder engine measured per-query Kendall tau 0.955 vs fp32 with its head in
    bf16, 0.993 in fp32); the norm and head are a negligible share of the work. Idempotent
    (scorers sharing one model each ask for it)."""
    if getattr(module, "_fp32_outside_autocast", False):
        return
    module._fp32_outside_autocast = True  # type: ignore[assignment]
    module.float()
    forward = module.forward

    def fp32_forward(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type, enabled=False):
            return forward(*(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point()
                             else a for a in args), **kwargs)

    module.forward = fp32_forward  # type: ignore[method-assign]


def plan_batches(lengths: np.ndarray, batch_size: int, max_tokens: int | None,
                 extra: int = 0) -> list[np.ndarray]:
    """Positions into ``lengths`` per batch: longest first, at most ``batch_size`` rows and,
    when set, at most ``max_tokens`` padded tokens (each row counting ``extra`` more, the
    cached prefix it attends to)."""
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        cap = batch_size
        if max_tokens:
            cap = min(cap, max_tokens // max(1, int(lengths[order[start]]) + extra))
        size = max(1, min(cap, len(order) - start))
        batches.append(order[start : start + size])
        start += size
    return batches


class _PromptScorer:
    """What the causal and seq2seq scorers share: encoding, precision, head, batching."""

    def __init__(self, tokenizer, model: Any, encoder: PromptEncoder, *,
                 answer_ids: tuple[int, int | None], score: str, batch_size: int,
                 device: torch.device, dtype: torch.dtype, max_tokens_per_batch: int | None,
                 fp32_head: bool = True):
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        self.tokenizer = tokenizer
        self.model = model
        self.encoder = encoder
        self.yes_id, self.no_id = answer_ids
        self.score_mode = score
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.max_tokens_per_batch = max_tokens_per_batch
        self.fp32_head = fp32_head
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                          else (tokenizer.eos_token_id or 0))
        # Autocast over fp32 weights on CPU and GPU alike: for a model this size the re-cast is
        # small next to the matmuls, and the fp32 norm and head need no second weight copy.
        self.autocast = dtype != torch.float32
        self.last_truncated: np.ndarray = np.zeros(0, dtype=bool)

    @property
    def max_length(self) -> int:
        return self.encoder.max_length

    @property
    def path(self) -> str:
        precision = str(self.dtype).replace("torch.", "")
        return f"{self.device.type}/{precision}{'-autocast' if self.autocast else ''}"

    def _autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.autocast)

    def _combine(self, logits: torch.Tensor) -> torch.Tensor:
        """(rows, 2) answer logits [yes, no] (or (rows, 1) [yes]) -> one score per row."""
        logits = logits.float()
        if self.no_id is None:
            return logits[:, 0]
        if self.score_mode == "log_softmax":
            return torch.log_softmax(logits, dim=-1)[:, 0]
        return logits[:, 0] - logits[:, 1]

    def encode(self, pairs: Sequence[tuple[str, str]]) -> EncodedPrompts:
        return self.encoder.encode(pairs)

    def score(self, pairs: Sequence[tuple[str, str]]) -> tuple[np.ndarray, int]:
        """Scores in input order and how many pairs were truncated (which:
        ``last_truncated``)."""
        n = len(pairs)
        out = np.empty(n, dtype=np.float64)
        if n == 0:
            self.last_truncated = np.zeros(0, dtype=bool)
            return out, 0
        enc = self.encode(pairs)
        self.last_truncated = enc.truncated
        pieces: list[tuple[np.ndarray, torch.Tensor]] = []
        with torch.inference_mode(), self._autocast():
            for rows, scores in self._score_encoded(enc):
                pieces.append((rows, scores))
        out[np.concatenate([r for r, _ in pieces])] = torch.cat(
            [s for _, s in pieces]).float().cpu().numpy()
        return out, int(enc.truncated.sum())

    def _score_encoded(self, enc: EncodedPrompts):  # pragma: no cover - abstract
        raise NotImplementedError

    def _batches(self, enc: EncodedPrompts, *, left: bool
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The planned batches of ``enc``: each one's rows, its token ids padded with pad_id
        to its longest prompt (on the left or the right) and its attention mask."""
        lengths = enc.lengths()
        for rows in plan_batches(lengths, self.batch_size, self.max_tokens_per_batch):
            width = int(lengths[rows].max())
            ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                x = enc.ids(int(i))
                span = slice(width - len(x), width) if left else slice(0, len(x))
                ids[r, span] = x
                mask[r, span] = 1
            yield rows, ids, mask

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)


class CausalLMScorer(_PromptScorer):
    """Scores prompts with a causal LM (see the module docstring); ``prefix_reuse`` picks the
    path."""

    def __init__(self, tokenizer, model: Any, encoder: PromptEncoder, *,
                 prefix_reuse: bool = True, **kwargs: Any):
        super().__init__(tokenizer, model, encoder, **kwargs)
        self.prefix_reuse = prefix_reuse
        self.body = getattr(model, model.base_model_prefix)
        head = model.get_output_embeddings()
        ids = [self.yes_id] + ([self.no_id] if self.no_id is not None else [])
        self.head_weight = head.weight.detach()[ids].float().clone()
        bias = getattr(head, "bias", None)
        self.head_bias = bias.detach()[ids].float().clone() if bias is not None else None
        self.softcap = getattr(model.config, "final_logit_softcapping", None)
        norm = getattr(self.body, "norm", None)
        if fp32_needed(self) and norm is not None:
            fp32_outside_autocast(norm, self.device.type)
        self._static_cache: Any = None
        # transformers >= 5.2x names the argument ``cache`` (``past_key_values`` deprecated).
        self.cache_arg = ("cache" if "cache" in inspect.signature(self.body.forward).parameters
                          else "past_key_values")
        self.prefix_tokens_reused = 0

    @property
    def path(self) -> str:
        return super().path + ("/prefix-reuse" if self.prefix_reuse else "/full")

    def sibling(self, **changes: Any) -> CausalLMScorer:
        """Another scorer on this one's model, tokenizer and prompts (loaded once), with
        ``changes`` to its settings (``dtype``, ``prefix_reuse``, ``fp32_head``, ...); it
        keeps its own prefix cache. What benchmarks compare on one model."""
        settings = {"answer_ids": (self.yes_id, self.no_id), "score": self.score_mode,
                    "batch_size": self.batch_size, "device": self.device, "dtype": self.dtype,
                    "max_tokens_per_batch": self.max_tokens_per_batch,
                    "fp32_head": self.fp32_head, "prefix_reuse": self.prefix_reuse}
        return CausalLMScorer(self.tokenizer, self.model, self.encoder,
                              **{**settings, **changes})

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        if fp32_needed(self) or self.dtype == torch.float32:
            with torch.autocast(self.device.type, enabled=False):  # scoring runs under autocast
                logits = hidden.float() @ self.head_weight.T
        else:  # fp32_head=False: the head in the compute dtype, rounded as autocast would
            logits = (hidden.to(self.dtype) @ self.head_weight.to(self.dtype).T).float()
        if self.head_bias is not None:
            logits = logits + self.head_bias
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return self._combine(logits)

    def _score_encoded(self, enc: EncodedPrompts):
        if self.prefix_reuse and (enc.static or any(enc.queries)):
            yield from self._score_reusing(enc)
        else:
            yield from self._score_full(enc)

    # ------------------------------------------------------------------ full prompts
    def _score_full(self, enc: EncodedPrompts):
        # left padding: the last position is real
        for rows, ids, mask in self._batches(enc, left=True):
            positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
            out = self.body(input_ids=self._tensor(ids), attention_mask=self._tensor(mask),
                            position_ids=self._tensor(positions), use_cache=False)
            yield rows, self._head(out.last_hidden_state[:, -1])

    # ------------------------------------------------------------------ prefix reuse
    def _extend(self, cache: Any, ids: Sequence[int], past: int) -> Any:
        """``cache`` (a copy; None: empty) extended by ``ids`` at positions past..."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config) if cache is None else copy.deepcopy(cache)
        if ids:
            x = np.asarray([ids], dtype=np.int64)
            positions = np.arange(past, past + len(ids), dtype=np.int64)[None]
            self.body(input_ids=self._tensor(x),
                      attention_mask=self._tensor(np.ones((1, past + len(ids)), np.int64)),
                      position_ids=self._tensor(positions), use_cache=True,
                      **{self.cache_arg: cache})
        return cache

    def static_cache(self, static: list[int]) -> Any:
        """The key/value cache of the template's static prefix (computed once)."""
        if self._static_cache is None or self._static_cache[0] != static:
            self._static_cache = (list(static), self._extend(None, static, 0))
        return self._static_cache[1]

    def _query_prefixes(self, enc: EncodedPrompts) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every query's cached prefix (the static prefix, then its query part), per layer as
        keys and values of shape [queries, kv heads, longest prefix, head dim], each query's
        right-aligned (the gap before it zeros, masked when used). Query parts are computed
        in batches of queries against the static cache (right padding: a real token never
        attends a pad), so a GPU runs a few batched passes, not one per query."""
        from transformers import DynamicCache

        static = self.static_cache(enc.static)
        s = len(enc.static)
        lengths = [len(x) for x in enc.queries]
        longest = s + max(lengths, default=0)
        static_layers = [(layer.keys, layer.values) for layer in static.layers] if s else []
        stacked: list[tuple[torch.Tensor, torch.Tensor]] = []

        def place(layer: int, q: int, keys: torch.Tensor, values: torch.Tensor) -> None:
            if len(stacked) <= layer:  # first query placed: allocate
                shape = (len(enc.queries), keys.shape[0], longest, keys.shape[-1])
                stacked.append((keys.new_zeros(shape), values.new_zeros(shape)))
            stacked[layer][0][q, :, longest - keys.shape[1]:] = keys
            stacked[layer][1][q, :, longest - keys.shape[1]:] = values

        for q in (q for q, n in enumerate(lengths) if n == 0 and s):
            for layer, (k, v) in enumerate(static_layers):
                place(layer, q, k[0], v[0])
        with_query = [q for q, n in enumerate(lengths) if n]
        for at in range(0, len(with_query), self.batch_size):
            chunk = with_query[at: at + self.batch_size]
            width = max(lengths[q] for q in chunk)
            ids = np.full((len(chunk), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(chunk), s + width), dtype=np.int64)
            mask[:, :s] = 1
            for r, q in enumerate(chunk):
                ids[r, : lengths[q]] = enc.queries[q]
                mask[r, s: s + lengths[q]] = 1
            positions = np.repeat(s + np.arange(width, dtype=np.int64)[None], len(chunk), 0)
            cache: Any = DynamicCache([(k.expand(len(chunk), -1, -1, -1),
                                   v.expand(len(chunk), -1, -1, -1))
                                  for k, v in static_layers] or None, config=self.model.config)
            self.body(input_ids=self._tensor(ids), attention_mask=self._tensor(mask),
                      position_ids=self._tensor(positions),
                      use_cache=True, **{self.cache_arg: cache})
            for layer, cached in enumerate(cache.layers):
                for r, q in enumerate(chunk):
                    place(layer, q, cached.keys[r, :, : s + lengths[q]],
                          cached.values[r, :, : s + lengths[q]])
        return stacked

    def _score_reusing(self, enc: EncodedPrompts):
        """Candidates of all queries batched by their own length (as the full path batches),
        each row attending to its query's cached prefix, left-aligned to the batch's longest
        prefix (the gap masked; rotary positions follow each row's own prefix length)."""
        from transformers import DynamicCache

        prefixes = self._query_prefixes(enc)
        stored = int(prefixes[0][0].shape[2]) if prefixes else 0
        query_lengths = np.array([len(x) for x in enc.queries], dtype=np.int64)
        past = len(enc.static) + query_lengths[enc.query_of]  # per pair: prefix tokens cached
        counts = np.bincount(enc.query_of, minlength=len(enc.queries))
        self.prefix_tokens_reused += int(((len(enc.static) + query_lengths)
                                          * np.maximum(counts - 1, 0)).sum())
        tails = np.array([len(d) for d in enc.documents], dtype=np.int64) + len(enc.suffix)
        for rows in plan_batches(tails, self.batch_size, self.max_tokens_per_batch,
                                 extra=int(past.max())):
            width, longest, n = int(tails[rows].max()), int(past[rows].max()), len(rows)
            ids = np.full((n, width), self.pad_id, dtype=np.int64)
            mask = np.zeros((n, longest + width), dtype=np.int64)
            for r, i in enumerate(rows):
                x = enc.documents[int(i)] + enc.suffix
                ids[r, : len(x)] = x  # right padding: pads follow the real tokens
                mask[r, longest - int(past[i]) : longest + len(x)] = 1
            positions = past[rows][:, None] + np.arange(width, dtype=np.int64)[None]
            of = self._tensor(np.ascontiguousarray(enc.query_of[rows]))
            layers = [(k[of, :, stored - longest:], v[of, :, stored - longest:])
                      for k, v in prefixes] if longest else []
            cache = DynamicCache(layers or None, config=self.model.config)
            out = self.body(input_ids=self._tensor(ids), attention_mask=self._tensor(mask),
                            position_ids=self._tensor(positions), use_cache=True,
                            **{self.cache_arg: cache})
            last = self._tensor(tails[rows] - 1)
            hidden = out.last_hidden_state[torch.arange(n, device=self.device), last]
            yield rows, self._head(hidden)


def fp32_needed(scorer: _PromptScorer) -> bool:
    return scorer.fp32_head and scorer.dtype != torch.float32


class Seq2SeqScorer(_PromptScorer):
    """Scores prompts with an encoder-decoder (monoT5): the first decoder step's answer
    logits."""

    def __init__(self, tokenizer, model: Any, encoder: PromptEncoder, **kwargs: Any):
        super().__init__(tokenizer, model, encoder, **kwargs)
        start = getattr(model.config, "decoder_start_token_id", None)
        self.start_id = int(start if start is not None else self.pad_id)
        if fp32_needed(self):
            fp32_outside_autocast(model.get_output_embeddings(), self.device.type)
        self.answer = [self.yes_id] + ([self.no_id] if self.no_id is not None else [])

    def _score_encoded(self, enc: EncodedPrompts):
        for rows, ids, mask in self._batches(enc, left=False):
            start = np.full((len(rows), 1), self.start_id, dtype=np.int64)
            out = self.model(input_ids=self._tensor(ids), attention_mask=self._tensor(mask),
                             decoder_input_ids=self._tensor(start), use_cache=False)
            yield rows, self._combine(out.logits[:, 0, self.answer])

