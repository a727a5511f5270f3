"""What the pointwise LLM rerankers (``causal-lm``, ``seq2seq``) share: their parameters
(a template preset or custom pieces, instruction, answer tokens, score) and loading."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import AfterValidator, Field, field_validator

from rerank_eval.engine.lm import CausalLMScorer, Seq2SeqScorer
from rerank_eval.engine.prompts import PromptEncoder, PromptTemplate, token_id
from rerank_eval.errors import InputError
from rerank_eval.models import (
    DTYPE_ALIASES,
    Device,
    DType,
    check_model_available,
    cpu_has_native_bf16,
    load_pretrained,
    model_identity,
    resolve_device,
    resolve_dtype,
    resolve_model,
)
from rerank_eval.params import NonEmptyStr, PositiveInt, as_field_error, expected
from rerank_eval.rerankers.base import Reranker, RerankerParams
from rerank_eval.rerankers.prompt_presets import PromptPreset, preset


def _check_template(value: str | list[str]) -> str | list[str]:
    """A custom template's pieces form a valid template (preset names: per kind, below)."""
    if isinstance(value, list):
        as_field_error(lambda field: PromptTemplate(tuple(value)))
    return value


Template = Annotated[str | list[Annotated[str, Field(strict=True)]],
                    Field(union_mode="left_to_right"),
                    expected("a preset name or a list of strings"),
                    AfterValidator(_check_template)]


class PromptedLMParams(RerankerParams):
    """Keys of the pointwise LLM rerankers."""

    model: NonEmptyStr
    """A local folder (relative to the config) or a hub id."""
    template: Template
    """A preset name (qwen3-reranker, mxbai-rerank-v2, bge-reranker-gemma; seq2seq: monot5)
    or a custom prompt: a list of strings, each tokenized alone, holding {instruction},
    {query} (before the document) and {document} (in its own piece; only it is truncated)."""
    instruction: str | None = None
    """Fills {instruction}; default: the preset's (empty for a custom template)."""
    yes_token: str | None = None
    """The answer token meaning relevant (a vocabulary entry or a one-token text); default:
    the preset's, else "yes"."""
    no_token: str | None = None
    """The answer token meaning not relevant; "" scores logit(yes) alone; default: the
    preset's, else "no"."""
    score: Literal["logit", "log_softmax"] | None = None
    """logit: logit(yes) - logit(no); log_softmax: log P(yes) over the two. Default: logit."""
    max_length: PositiveInt = 512
    """Tokens per prompt, every piece counted; only the document is cut (and counted)."""
    batch_size: PositiveInt = 16
    device: Device = "auto"
    dtype: DType = "auto"
    """auto: fp16 on a GPU, bf16 on a CPU with native bf16, else fp32 (norm and head in fp32)."""
    max_tokens_per_batch: PositiveInt | None = None
    """Cap on padded tokens per batch (memory)."""

    preset_kind: ClassVar[str] = "any"  # whose presets ``template`` may name

    @field_validator("template")
    @classmethod
    def _preset_of_this_kind(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str):
            as_field_error(lambda field: preset(value, cls.preset_kind))
        return value


class PromptedLM(Reranker):
    """Base of the pointwise LLM rerankers: resolves the template and answer tokens, loads
    the model, delegates scoring to the engine (``engine/lm.py``)."""

    auto_class: ClassVar[str]
    params: PromptedLMParams

    def __init__(self, name: str, params: PromptedLMParams | Mapping[str, Any], *,
                 base_dir: Path):
        super().__init__(name, params, base_dir=base_dir)
        self.field = f"rerankers[{name}].model"
        self.model_path = resolve_model(self.params.model, base_dir, self.field)
        template = self.params.template
        self.preset: PromptPreset | None = None
        if isinstance(template, str):
            try:
                self.preset = preset(template, self.kind)
            except InputError as e:
                raise InputError(f"rerankers[{name}].template: {e}") from None
        p = self.preset
        self.instruction = (self.params.instruction if self.params.instruction is not None
                            else p.instruction if p else "")
        self.template = p.template(self.instruction) if p else PromptTemplate(tuple(template))
        self.yes_token = self.params.yes_token or (p.yes_token if p else "yes")
        no = self.params.no_token if self.params.no_token is not None else (
            p.no_token if p else "no")
        self.no_token = no or None
        self.score_mode = self.params.score or "logit"
        self._scorer: CausalLMScorer | Seq2SeqScorer | None = None
        self.resolved: dict[str, Any] = {}

    def _model_class(self):  # pragma: no cover - per kind
        raise NotImplementedError

    def _scorer_kwargs(self) -> dict[str, Any]:
        return {}

    def _load(self) -> CausalLMScorer | Seq2SeqScorer:
        from transformers import AutoTokenizer

        device = resolve_device(self.params.device)
        if self.params.dtype == "int8":
            raise InputError(f"rerankers[{self.name}].dtype: int8 is not supported for "
                             f"kind {self.kind}")
        dtype = resolve_dtype(self.params.dtype, device)
        tokenizer = load_pretrained(AutoTokenizer.from_pretrained, self.model_path, self.field)
        if not getattr(tokenizer, "is_fast", False):
            raise InputError(f"{self.field}: a fast (Rust) tokenizer is required")
        model = load_pretrained(self._model_class().from_pretrained, self.model_path,
                                self.field, dtype=torch.float32)
        model.eval().to(device)
        where = f"rerankers[{self.name}]"
        yes = token_id(tokenizer, self.yes_token, f"{where}.yes_token")
        no = token_id(tokenizer, self.no_token, f"{where}.no_token") if self.no_token else None
        try:
            encoder = PromptEncoder(tokenizer, self.template, instruction=self.instruction,
                                    max_length=int(self.params.max_length))
        except InputError as e:  # "max_length: ..." names this reranker's field
            raise InputError(f"{where}.{e}") from None
        tokens = self.params.max_tokens_per_batch
        scorer_class = CausalLMScorer if self.kind == "causal-lm" else Seq2SeqScorer
        scorer = scorer_class(
            tokenizer, model, encoder, answer_ids=(yes, no), score=self.score_mode,
            batch_size=int(self.params.batch_size), device=device, dtype=dtype,
            max_tokens_per_batch=int(tokens) if tokens else None, **self._scorer_kwargs())
        self.resolved = {"device": str(device), "dtype": str(dtype).replace("torch.", ""),
                         "max_length": int(self.params.max_length),
                         "yes_token_id": yes, "no_token_id": no,
                         "template": self.preset.name if self.preset else "custom",
                         "template_source": self.preset.source if self.preset else None}
        return scorer

    @property
    def scorer(self) -> CausalLMScorer | Seq2SeqScorer:
        if self._scorer is None:
            self._scorer = self._load()
        return self._scorer

    def describe(self) -> dict[str, Any]:
        scorer = self.scorer
        return {**super().describe(), "model_path": self.model_path, **self.resolved,
                "batch_size": scorer.batch_size, "dtype_requested": self.params.dtype,
                "cpu_native_bf16": cpu_has_native_bf16(), "scoring_path": scorer.path,
                "score": self.score_mode, "max_tokens_per_batch": scorer.max_tokens_per_batch}

    def fingerprint(self) -> dict[str, Any]:
        """Weights (content hash), the prompt as resolved (template pieces, instruction,
        answer tokens, score), max_length and the dtype ``auto`` resolves to here."""
        dtype = DTYPE_ALIASES.get(self.params.dtype, self.params.dtype)
        if dtype == "auto":
            dtype = str(resolve_dtype("auto", resolve_device(self.params.device))).replace(
                "torch.", "")
        return {"kind": self.kind, "model": model_identity(self.model_path), "dtype": dtype,
                "pieces": list(self.template.pieces), "instruction": self.instruction,
                "yes_token": self.yes_token, "no_token": self.no_token,
                "score": self.score_mode, "max_length": int(self.params.max_length)}

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        return self._score_local(self.scorer, pairs, self.resolved["dtype"])

    def preflight(self) -> None:
        check_model_available(self.model_path, self.field)

    def close(self) -> None:
        self._scorer = None
