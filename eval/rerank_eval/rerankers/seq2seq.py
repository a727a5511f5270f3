"""``kind: seq2seq``: pointwise reranking with an encoder-decoder (monoT5 style); see
``lm_base.py`` for the keys and ``engine/lm.py`` for how prompts are scored."""

from __future__ import annotations

from rerank_eval.rerankers.lm_base import PromptedLM, PromptedLMParams


class Seq2SeqParams(PromptedLMParams):
    """``kind: seq2seq``: any AutoModelForSeq2SeqLM checkpoint, scored by the logits of two
    answer tokens at the first decoder step (preset monot5)."""

    preset_kind = "seq2seq"


class Seq2Seq(PromptedLM):
    """score = logit(true) - logit(false) of the first decoder step (monoT5)."""

    kind = "seq2seq"
    Params = Seq2SeqParams
    params: Seq2SeqParams

    def _model_class(self):
        from transformers import AutoModelForSeq2SeqLM

        return AutoModelForSeq2SeqLM
