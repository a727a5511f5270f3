"""``kind: causal-lm``: pointwise reranking with a decoder-only LM (Qwen3-Reranker,
mxbai-rerank-v2, bge-reranker-v2-gemma, or a custom prompt); see ``lm_base.py`` for the keys
and ``engine/lm.py`` for how prompts are scored."""

from __future__ import annotations

from typing import Any

from rerank_eval.params import Bool
from rerank_eval.rerankers.lm_base import PromptedLM, PromptedLMParams


class CausalLMParams(PromptedLMParams):
    """``kind: causal-lm``: any AutoModelForCausalLM checkpoint, scored by the logits of two
    answer tokens at the prompt's last position."""

    preset_kind = "causal-lm"

    prefix_reuse: Bool = True
    """Compute the key/value cache of the shared prompt prefix (system prompt, instruction,
    query) once per query and score only each candidate's own tokens against it."""


class CausalLM(PromptedLM):
    """score = logit(yes) - logit(no) at the last position of the rendered prompt (or
    ``score: log_softmax``; with ``no_token: ""`` logit(yes) alone, as bge-reranker-v2-gemma)."""

    kind = "causal-lm"
    Params = CausalLMParams
    params: CausalLMParams

    def _model_class(self):
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM

    def _scorer_kwargs(self) -> dict[str, Any]:
        return {"prefix_reuse": bool(self.params.prefix_reuse)}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "prefix_reuse": bool(self.params.prefix_reuse)}
