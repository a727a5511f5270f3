"""Prompt presets of published pointwise LLM rerankers, exact to their model cards.

Each preset is the card's prompt split into the pieces the card's code tokenizes separately
(see ``engine/prompts.py``), its default instruction, and the answer tokens whose logits
make the score. The texts are the cards'; changing a character changes the model's scores.

Truncation is the harness's, the same for every preset: ``max_length`` bounds the whole prompt
and only the document is cut, from its end. The cards differ among themselves (Qwen3 cuts
the body to fit, which for a long passage is the same cut; mxbai and bge-gemma cap the query
at 3/4 of max_length and add the template's tokens beyond it; pygaggle's monoT5 cuts the
whole text at 512 tokens, dropping " Relevant:" for long passages), so scores of pairs that
reach the window can differ from the cards' there.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from rerank_eval.engine.prompts import PromptTemplate
from rerank_eval.errors import InputError


@dataclass(frozen=True)
class PromptPreset:
    """A published model's prompt, answer tokens and score."""

    name: str
    kind: str  # "causal-lm" or "seq2seq"
    pieces: tuple[str, ...]
    yes_token: str
    no_token: str | None  # None: the card scores logit(yes) alone
    instruction: str = ""
    # With an instruction, these pieces replace ``pieces`` (mxbai puts it inside the query piece).
    pieces_with_instruction: tuple[str, ...] | None = None
    source: str = ""

    def template(self, instruction: str) -> PromptTemplate:
        pieces = self.pieces_with_instruction if instruction and self.pieces_with_instruction \
            else self.pieces
        return PromptTemplate(pieces)


# https://huggingface.co/Qwen/Qwen3-Reranker-0.6B (model card, "Transformers Usage"): prefix
# and suffix are tokenized apart from the body
# "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"; the body splits here at its
# line breaks (Qwen's pre-tokenizer never merges a "\n" with the "<" after it). Tokens "yes"
# and "no" (tokenizer.convert_tokens_to_ids); the card's score, exp(log_softmax([no, yes]))[yes],
# orders candidates as logit(yes) - logit(no) does.
QWEN3_RERANKER = PromptPreset(
    name="qwen3-reranker", kind="causal-lm",
    pieces=(
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the "
        "Query and the Instruct provided. Note that the answer can only be \"yes\" or \"no\"."
        "<|im_end|>\n<|im_start|>user\n",
        "<Instruct>: {instruction}\n",
        "<Query>: {query}\n",
        "<Document>: {document}",
        "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
    ),
    yes_token="yes", no_token="no",
    instruction="Given a web search query, retrieve relevant passages that answer the query",
    source="https://huggingface.co/Qwen/Qwen3-Reranker-0.6B",
)

# https://huggingface.co/mixedbread-ai/mxbai-rerank-base-v2 points to the mxbai-rerank package,
# https://github.com/mixedbread-ai/mxbai-rerank/blob/main/mxbai_rerank/mxbai_rerank_v2.py:
# chat prefix + ids("query: {query}") (with an instruction: "instruction: {i}\nquery: {query}")
# + ids("\n") + ids("document: {document}") + ids("\n") + ids(task prompt) + chat suffix, each
# tokenized alone; score = logit("1") - logit("0") at the last position.
_MXBAI_TASK = ("You are a search relevance expert who evaluates how well documents match search "
               "queries. For each query-document pair, carefully analyze the semantic "
               "relationship between them, then provide your binary relevance judgment (0 for "
               "not relevant, 1 for relevant).\nRelevance:")
_MXBAI_PREFIX = ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                 "assistant.<|im_end|>\n<|im_start|>user\n")
_MXBAI_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
MXBAI_RERANK_V2 = PromptPreset(
    name="mxbai-rerank-v2", kind="causal-lm",
    pieces=(_MXBAI_PREFIX, "query: {query}", "\n", "document: {document}", "\n", _MXBAI_TASK,
            _MXBAI_SUFFIX),
    pieces_with_instruction=(_MXBAI_PREFIX, "instruction: {instruction}\nquery: {query}", "\n",
                             "document: {document}", "\n", _MXBAI_TASK, _MXBAI_SUFFIX),
    yes_token="1", no_token="0",
    source="https://github.com/mixedbread-ai/mxbai-rerank/blob/main/mxbai_rerank/"
           "mxbai_rerank_v2.py",
)

# https://huggingface.co/BAAI/bge-reranker-v2-gemma (model card, "Using Huggingface
# transformers", get_inputs): [bos] + ids("A: {query}") + ids("\n") + ids("B: {passage}") +
# ids("\n") + ids(prompt); score = logit("Yes") at the last position (no second token). The
# card's ``prompt`` argument is this preset's instruction.
BGE_RERANKER_GEMMA = PromptPreset(
    name="bge-reranker-gemma", kind="causal-lm",
    pieces=("A: {query}", "\n", "B: {document}", "\n", "{instruction}"),
    yes_token="Yes", no_token=None,
    instruction="Given a query A and a passage B, determine whether the passage contains an "
                "answer to the query by providing a prediction of either 'Yes' or 'No'.",
    source="https://huggingface.co/BAAI/bge-reranker-v2-gemma",
)

# https://huggingface.co/castorini/monot5-base-msmarco (points to pygaggle,
# https://github.com/castorini/pygaggle/blob/master/pygaggle/rerank/transformer.py, MonoT5):
# "Query: {query} Document: {document} Relevant:" + </s>; the first decoder step's logits of
# "▁true" and "▁false" (pygaggle's log-softmax over the two orders candidates as their
# difference does).
MONOT5 = PromptPreset(
    name="monot5", kind="seq2seq",
    pieces=("Query: {query}", " Document: {document}", " Relevant:"),
    yes_token="\u2581true", no_token="\u2581false",
    source="https://huggingface.co/castorini/monot5-base-msmarco",
)

PRESETS: dict[str, PromptPreset] = {
    p.name: p for p in (QWEN3_RERANKER, MXBAI_RERANK_V2, BGE_RERANKER_GEMMA, MONOT5)}


def preset(name: str, kind: str) -> PromptPreset:
    """The preset ``name`` of reranker kind ``kind`` (``any``: of any kind); an unknown name
    is a one-line error with the closest known one."""
    names = [n for n, p in PRESETS.items() if kind in ("any", p.kind)]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"presets: {', '.join(names)}"
        of = "" if kind == "any" else f" for kind {kind}"
        raise InputError(f"unknown template preset {name!r}{of} ({hint}; or give the template "
                         "as a list of strings)")
    return PRESETS[name]
