"""Hugging Face cross-encoders: any AutoModelForSequenceClassification checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rerank_eval.errors import InputError
from rerank_eval.rerankers.base import Reranker
from rerank_eval.rerankers.models import load_pretrained, resolve_model
from rerank_eval.scoring import PairScorer, resolve_device, resolve_dtype


class CrossEncoder(Reranker):
    """Reads query and passage together; one forward pass per pair.

    Score: with one output label, the logit; with two, the relevant class's logit
    (``label_index``, default 1) or its log-softmax (``score: log_softmax``).
    """

    kind = "cross-encoder"
    allowed: dict[str, Any] = {
        "model": None,
        "batch_size": 32,
        "max_length": 512,
        "device": "auto",
        "dtype": "float32",
        "label_index": None,
        "score": "logit",
    }

    def __init__(self, name: str, params: dict[str, Any], *, base_dir: Path):
        super().__init__(name, params, base_dir=base_dir)
        field = f"rerankers[{name}].model"
        if self.params["score"] not in {"logit", "log_softmax"}:
            raise InputError(f"rerankers[{name}].score: use 'logit' or 'log_softmax'")
        self.model_path = resolve_model(str(self.params["model"] or ""), base_dir, field)
        self._scorer: PairScorer | None = None
        self.field = field

    def _load(self) -> PairScorer:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        device = resolve_device(str(self.params["device"]))
        dtype = resolve_dtype(str(self.params["dtype"]), device)
        tokenizer = load_pretrained(AutoTokenizer.from_pretrained, self.model_path, self.field)
        if not getattr(tokenizer, "is_fast", False):
            raise InputError(f"{self.field}: a fast (Rust) tokenizer is required")
        # A checkpoint without a trained classification head gets a new one; seed it so the same
        # config gives the same numbers, and say so in the results.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model, loading = load_pretrained(
                AutoModelForSequenceClassification.from_pretrained, self.model_path, self.field,
                output_loading_info=True,
            )
        self.head_untrained = any("classifier" in k or "score" in k
                                  for k in loading.get("missing_keys", []))
        model.eval().to(device)
        max_length = int(self.params["max_length"])
        model_max = getattr(tokenizer, "model_max_length", max_length) or max_length
        max_length = min(max_length, int(model_max), int(getattr(
            model.config, "max_position_embeddings", max_length)))
        head = self._head(int(model.config.num_labels))
        self.resolved = {"device": str(device), "dtype": str(dtype).replace("torch.", ""),
                         "head_untrained": self.head_untrained,
                         "max_length": max_length, "num_labels": int(model.config.num_labels)}
        return PairScorer(tokenizer, model, head=head, max_length=max_length,
                          batch_size=int(self.params["batch_size"]), device=device, dtype=dtype)

    def _head(self, num_labels: int):
        label = self.params["label_index"]
        if num_labels == 1:
            if label not in (None, 0):
                raise InputError(f"rerankers[{self.name}].label_index: the model has one label")
            return lambda logits: logits[:, 0]
        if label is None:
            if num_labels != 2:
                raise InputError(
                    f"rerankers[{self.name}].label_index: the model has {num_labels} labels; "
                    "say which one means relevant"
                )
            label = 1
        if not 0 <= int(label) < num_labels:
            raise InputError(f"rerankers[{self.name}].label_index: {label} out of range")
        index = int(label)
        if self.params["score"] == "log_softmax":
            return lambda logits: torch.log_softmax(logits.float(), dim=-1)[:, index]
        return lambda logits: logits[:, index]

    @property
    def scorer(self) -> PairScorer:
        if self._scorer is None:
            self._scorer = self._load()
        return self._scorer

    def describe(self) -> dict[str, Any]:
        scorer = self.scorer
        return {**super().describe(), "model_path": self.model_path, **self.resolved,
                "batch_size": scorer.batch_size}

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        scores, truncated = self.scorer.score(pairs)
        self.stats.pairs_scored += len(pairs)
        self.stats.pairs_truncated += truncated
        return scores

    def close(self) -> None:
        self._scorer = None
