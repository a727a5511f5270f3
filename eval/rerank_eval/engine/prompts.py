"""Prompt templates of pointwise LLM rerankers, and their token ids with only the document cut.

A template is a sequence of *pieces*, each tokenized on its own and concatenated, which is
how the model cards build their inputs (mxbai-rerank-v2 and bge-reranker-v2-gemma tokenize
query, separator, document and task prompt separately; Qwen3-Reranker tokenizes its system
prefix and suffix apart from the body, and the body splits into pieces at line breaks, where
its byte-level BPE never merges across). Pieces may hold ``{instruction}``, ``{query}`` and
``{document}``: the ``{query}`` piece must come before the ``{document}`` piece.

Why pieces: the prompt then splits into parts whose ids do not depend on what follows:
the *static* prefix (no query, no document), the *query* part (from the query piece to the
document piece), the *document* piece (the only one truncated, from its end) and the
*suffix*. The static prefix and the query part are shared by every candidate of a query,
so their key/value cache can be computed once (``lm.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rerank_eval.errors import InputError

FIELDS = ("instruction", "query", "document")


@dataclass(frozen=True)
class PromptTemplate:
    """Pieces of a prompt, each tokenized alone (see the module docstring)."""

    pieces: tuple[str, ...]

    def __post_init__(self) -> None:
        doc = [i for i, p in enumerate(self.pieces) if "{document}" in p]
        query = [i for i, p in enumerate(self.pieces) if "{query}" in p]
        if len(doc) != 1 or any(p.count("{document}") > 1 for p in self.pieces):
            raise InputError("exactly one piece must hold {document} (once)")
        if len(query) > 1 or any(p.count("{query}") > 1 for p in self.pieces):
            raise InputError("at most one piece may hold {query} (once)")
        if query and query[0] > doc[0]:
            raise InputError("the {query} piece must come before the {document} piece")
        if query and query[0] == doc[0]:
            raise InputError("{query} and {document} must be in separate pieces "
                             "(only the document is truncated)")
        for p in self.pieces:
            _check_fields(p)

    @property
    def document_piece(self) -> int:
        return next(i for i, p in enumerate(self.pieces) if "{document}" in p)

    @property
    def query_piece(self) -> int:
        """Index of the first piece of the query part (the document piece if no query)."""
        return next((i for i, p in enumerate(self.pieces) if "{query}" in p),
                    self.document_piece)

    def render(self, query: str, document: str, instruction: str = "") -> str:
        """The prompt as one string (what the model card's code builds)."""
        return "".join(_fill(p, query=query, document=document, instruction=instruction)
                       for p in self.pieces)


def _check_fields(piece: str) -> None:
    import string

    try:
        names = [f for _, f, _, _ in string.Formatter().parse(piece) if f is not None]
    except ValueError as e:
        raise InputError(f"piece {piece!r}: {e} (write a literal brace as {{{{ or }}}})"
                         ) from None
    unknown = [n for n in names if n not in FIELDS]
    if unknown:
        raise InputError(f"piece {piece!r}: unknown field {{{unknown[0]}}} "
                         f"(known: {', '.join('{' + f + '}' for f in FIELDS)})")


def _fill(piece: str, **values: str) -> str:
    # str.format would read braces inside the values; fields are substituted one by one.
    return piece.format(**{k: "\0" + k + "\0" for k in FIELDS}).replace(
        "\0instruction\0", values["instruction"]).replace(
        "\0query\0", values["query"]).replace("\0document\0", values["document"])


@dataclass
class EncodedPrompts:
    """Token ids of some prompts, split into the parts a key/value cache can share."""

    static: list[int]  # leading special tokens + pieces before the query part
    suffix: list[int]  # pieces after the document + trailing special tokens
    queries: list[list[int]]  # the query part of each distinct query
    query_of: np.ndarray  # per pair: index into ``queries``
    documents: list[list[int]]  # per pair: the document piece's ids, already cut
    truncated: np.ndarray  # per pair: was the document (or the query) cut

    def ids(self, i: int) -> list[int]:
        """The whole prompt of pair ``i``."""
        return (self.static + self.queries[int(self.query_of[i])] + self.documents[i]
                + self.suffix)

    def lengths(self) -> np.ndarray:
        """Tokens per pair (whole prompt)."""
        q = np.array([len(x) for x in self.queries], dtype=np.int64)
        d = np.array([len(x) for x in self.documents], dtype=np.int64)
        return len(self.static) + q[self.query_of] + d + len(self.suffix)


class PromptEncoder:
    """Token ids of (query, document) prompts for one tokenizer, template and window.

    ``max_length`` bounds the whole prompt. The document piece is cut from its end to fit;
    a query part longer than half of what the fixed pieces leave is cut too (and counted),
    so every document keeps at least half of the window.
    """

    def __init__(self, tokenizer, template: PromptTemplate, *, instruction: str = "",
                 max_length: int):
        from tokenizers import Tokenizer

        self.tokenizer = tokenizer
        self.template = template
        self.instruction = instruction
        self.max_length = max_length
        # A private copy of the Rust tokenizer: no padding, no truncation, no special tokens.
        backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        backend.no_padding()
        backend.no_truncation()
        self.backend = backend
        before, after = special_tokens_around(tokenizer)
        pieces = template.pieces
        q, d = template.query_piece, template.document_piece
        self.static = before + self._static(pieces[:q])
        self.suffix = self._static(pieces[d + 1 :]) + after
        self.query_pieces = pieces[q:d]
        self.document_piece = pieces[d]
        fixed = len(self.static) + len(self.suffix)
        room = max_length - fixed
        if room < 2:
            raise InputError(f"max_length: {max_length} tokens leave no room for the query and "
                             f"document (the template's fixed pieces take {fixed})")
        self.max_query_tokens = room // 2

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        return [e.ids for e in self.backend.encode_batch_fast(list(texts),
                                                               add_special_tokens=False)]

    def _static(self, pieces: Sequence[str]) -> list[int]:
        texts = [_fill(p, query="", document="", instruction=self.instruction) for p in pieces]
        return [i for ids in self._encode([t for t in texts if t]) for i in ids]

    def encode(self, pairs: Sequence[tuple[str, str]]) -> EncodedPrompts:
        """Every pair's prompt ids, documents cut to the window."""
        unique = list(dict.fromkeys(q for q, _ in pairs))
        position = {q: i for i, q in enumerate(unique)}
        query_ids: list[list[int]] = [[] for _ in unique]
        query_cut = np.zeros(len(unique), dtype=bool)
        for piece in self.query_pieces:
            texts = [_fill(piece, query=q, document="", instruction=self.instruction)
                     for q in unique]
            for ids, more in zip(query_ids, self._encode(texts)):
                ids.extend(more)
        for i, ids in enumerate(query_ids):
            if len(ids) > self.max_query_tokens:
                del ids[self.max_query_tokens :]
                query_cut[i] = True
        docs = self._encode([_fill(self.document_piece, query=q, document=p,
                                   instruction=self.instruction) for q, p in pairs])
        query_of = np.fromiter((position[q] for q, _ in pairs), dtype=np.int64, count=len(pairs))
        truncated = query_cut[query_of].copy()
        fixed = len(self.static) + len(self.suffix)
        for i, ids in enumerate(docs):
            budget = self.max_length - fixed - len(query_ids[int(query_of[i])])
            if len(ids) > budget:
                del ids[budget:]
                truncated[i] = True
        return EncodedPrompts(self.static, self.suffix, query_ids, query_of, docs, truncated)


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one sequence (Gemma: ``<bos>``
    before; T5: ``</s>`` after; Qwen: none), as the model cards' code gets them."""
    probe = "a"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start]), list(full[start + len(plain) :])
    return [], []


def token_id(tokenizer, token: str, field: str) -> int:
    """The id of ``token``: a vocabulary entry (``yes``, ``▁true``), else a text that
    tokenizes to exactly one token (``1``); anything else is a one-line error."""
    vocab = tokenizer.get_vocab()
    if token in vocab:
        return int(vocab[token])
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise InputError(f"{field}: {token!r} is not one token of this tokenizer "
                         f"(it encodes to {len(ids)} tokens)")
    return int(ids[0])
