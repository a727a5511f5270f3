"""A local Hugging Face causal LM as a listwise backend: the window's messages through the
tokenizer's chat template (plain "role: content" lines when it has none), greedy decoding."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rerank_eval.models import (
    check_model_available,
    load_pretrained,
    model_identity,
    resolve_device,
    resolve_dtype,
    resolve_model,
)
from rerank_eval.rerankers.listwise.chat import Completion
from rerank_eval.rerankers.listwise.template import Message

if TYPE_CHECKING:
    from rerank_eval.rerankers.listwise.params import ListwiseParams


class LocalBackend:
    """Loads the model on first use; one window at a time (generation is sequential)."""

    def __init__(self, params: ListwiseParams, base_dir: Path, field: str):
        self.params = params
        self.field = field
        self.path = resolve_model(params.model, base_dir, field)
        self.device = resolve_device(params.device)
        self.dtype = resolve_dtype(params.dtype, self.device)
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()  # one generate() at a time

    def preflight(self) -> None:
        check_model_available(self.path, self.field)

    def identity(self) -> dict[str, str]:
        return model_identity(self.path)

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._tokenizer = load_pretrained(AutoTokenizer.from_pretrained, self.path, self.field)
        model = load_pretrained(AutoModelForCausalLM.from_pretrained, self.path, self.field,
                                dtype=self.dtype)
        self._model = model.to(self.device).eval()

    def max_new_tokens(self, n: int) -> int:
        """``max_output_tokens``, else enough for "[i] > " per passage (a few tokens each)."""
        if self.params.max_output_tokens is not None:
            return int(self.params.max_output_tokens)
        return 6 * n + 16

    def prompt(self, messages: list[Message]) -> str:
        self._load()
        if getattr(self._tokenizer, "chat_template", None):
            return str(self._tokenizer.apply_chat_template(messages, tokenize=False,
                                                           add_generation_prompt=True))
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"

    def complete(self, messages: list[Message], n: int) -> Completion:
        """Greedy answer to one window of ``n`` passages."""
        with self._lock:
            self._load()
            t0 = time.perf_counter()
            encoded = self._tokenizer(self.prompt(messages), return_tensors="pt",
                                      add_special_tokens=False)
            # Only what a causal LM takes (a BERT-style tokenizer adds token_type_ids).
            inputs = {k: encoded[k].to(self.device) for k in ("input_ids", "attention_mask")
                      if k in encoded}
            pad = self._tokenizer.pad_token_id
            if pad is None:
                pad = self._tokenizer.eos_token_id
            with torch.inference_mode():
                out = self._model.generate(**inputs, do_sample=False,
                                           max_new_tokens=self.max_new_tokens(n),
                                           pad_token_id=pad)
            new = out[0, inputs["input_ids"].shape[1]:]
            text = self._tokenizer.decode(new, skip_special_tokens=True)
            latency = (time.perf_counter() - t0) * 1000
        return Completion(text, int(inputs["input_ids"].shape[1]), int(new.shape[0]), latency)

    def close(self) -> None:
        self._model = None
        self._tokenizer = None
