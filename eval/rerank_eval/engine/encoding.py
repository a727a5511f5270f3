"""(query, passage) pairs to token ids: exactly what ``tokenizer(q, p, truncation="only_second")``
gives, at a fraction of the Python cost.

Why not call the transformers tokenizer: it builds Python objects per pair and per token
(ids, token types, overflow pieces), and on a GPU that Python time, not the model, bounded
the engine. Here a private copy of the Rust tokenizer encodes pairs in parallel without
character offsets; per pair only the ids cross into Python, flattened into one array; token
types are derived from where the passage starts; truncation is read from the length of a
window ``cut_margin_tokens`` longer than needed, whose extra tokens are then dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

CHANNELS = ("input_ids", "attention_mask", "token_type_ids")


def _pair_tokenizer(tokenizer, max_length: int):
    """An independent copy of a fast tokenizer's Rust backend that truncates pairs to
    ``max_length`` (passage only) and never pads."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.enable_truncation(max_length, stride=0, strategy="only_second", direction="right")
    return backend


@dataclass
class Queries:
    """Queries as they enter pairs: cut to the query budget where longer (at a token boundary)."""

    text: dict[str, str]  # original -> text encoded
    tokens: dict[str, int]  # original -> its number of tokens in a pair
    cut: set[str]  # originals that were cut


@dataclass
class Encoded:
    """Unpadded token ids of some pairs, flattened, with where each pair came from."""

    index: np.ndarray  # positions in the caller's input
    ids: np.ndarray  # every pair's ids, concatenated
    starts: np.ndarray  # where each pair's ids start in ``ids``
    lengths: np.ndarray  # tokens per pair
    types: np.ndarray | None  # token types, flattened like ``ids`` (None: the model has none)
    truncated_index: np.ndarray  # which positions of the caller's input were cut

    @property
    def truncated(self) -> int:
        return len(self.truncated_index)

    @property
    def input_ids(self) -> list[list[int]]:
        return self._rows(self.ids)

    @property
    def token_type_ids(self) -> list[list[int]] | None:
        return None if self.types is None else self._rows(self.types)

    @property
    def channels(self) -> int:
        """Arrays a padded batch carries: ids and attention mask, plus token types if any."""
        return 2 if self.types is None else 3

    def _rows(self, flat: np.ndarray) -> list[list[int]]:
        return [flat[s : s + n].tolist() for s, n in zip(self.starts, self.lengths)]

    def pad(self, rows: np.ndarray, width: int, pad_id: int, height: int | None = None,
            out: np.ndarray | None = None) -> np.ndarray:
        """Pairs ``rows`` right-padded to ``width``, stacked as (channel, row, position): ids,
        attention mask and, where the model has them, token types. ``height`` > len(rows) adds
        filler rows (one attended pad token each) so a batch can take a fixed shape."""
        n = len(rows)
        height = n if height is None else height
        if out is None:
            out = np.empty((self.channels, height, width), dtype=np.int64)
        pos = np.arange(width)
        lengths = self.lengths[rows]
        mask = pos < lengths[:, None]
        gather = np.where(mask, self.starts[rows][:, None] + pos, 0)
        out[0, :n] = np.where(mask, self.ids[gather], pad_id)
        out[1, :n] = mask
        if self.types is not None:
            out[2, :n] = np.where(mask, self.types[gather], 0)
        if height > n:
            out[:, n:] = 0
            out[0, n:] = pad_id
            out[1, n:, 0] = 1
        return out


class PairEncoder:
    """Encodes pairs for one tokenizer and window (``max_length`` tokens)."""

    #: Passages are cut (at a space) past this many characters per window token before
    #: tokenizing (SciFact abstracts: 4.5 characters per token in the window at the median,
    #: 5.7 at p99) ...
    cut_chars_per_token = 6
    #: ... and the cut is kept only where its text still runs this many tokens past the window
    #: (else the pair is encoded whole): the window's tokens are then those of the whole passage.
    cut_margin_tokens = 24

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.special_tokens = tokenizer.num_special_tokens_to_add(pair=True)
        # Keep at least half the window for the passage; longer queries are cut (and counted).
        self.max_query_tokens = max(1, (max_length - self.special_tokens) // 2)
        # Past the window by a margin: a pair longer than the window was truncated, and a cut
        # passage whose text fills the margin too covered the window (see ``_encode_pairs``).
        self.backend = _pair_tokenizer(tokenizer, max_length + self.cut_margin_tokens)
        probe = self.backend.encode("a", "b", add_special_tokens=True)
        sequences = probe.sequence_ids
        self.trailing_specials = len(sequences) - 1 - max(
            i for i, s in enumerate(sequences) if s == 1)
        self.type_offset: int | None = None  # passage start = query tokens + this
        self.types_from_encodings = False
        if "token_type_ids" in getattr(tokenizer, "model_input_names", []):
            first_passage = sequences.index(1)
            expected = [int(i >= first_passage) for i in range(len(sequences))]
            if probe.type_ids == expected:  # [CLS] q [SEP] -> 0, p [SEP] -> 1
                self.type_offset = first_passage - sequences.count(0)
            else:  # another template: read token types from every encoding
                self.types_from_encodings = True

    def queries(self, queries: Sequence[str]) -> Queries:
        """Over-long queries cut to ``max_query_tokens`` at a token boundary."""
        unique = list(dict.fromkeys(queries))
        enc = self.tokenizer(unique, add_special_tokens=False, return_offsets_mapping=True)
        text: dict[str, str] = {}
        tokens: dict[str, int] = {}
        cut: set[str] = set()
        for q, offsets in zip(unique, enc["offset_mapping"]):
            if len(offsets) > self.max_query_tokens:
                text[q] = q[: offsets[self.max_query_tokens - 1][1]]
                cut.add(q)
            else:
                text[q], tokens[q] = q, len(offsets)
        if cut:  # a word cut mid-way may tokenize differently alone: count what is encoded
            again = self.tokenizer([text[q] for q in cut], add_special_tokens=False)
            tokens.update((q, len(ids)) for q, ids in zip(cut, again["input_ids"]))
        return Queries(text, tokens, cut)

    def encode(self, pairs: Sequence[tuple[str, str]], index: np.ndarray,
               queries: Queries) -> Encoded:
        """Token ids (no padding) of ``pairs[index]``; counts pairs cut to ``max_length``."""
        picked = [pairs[i] for i in index]
        encodings = self._encode_pairs([(queries.text[q], p) for q, p in picked])
        n = len(encodings)
        lengths = np.fromiter(map(len, encodings), dtype=np.int64, count=n)
        ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), dtype=np.int64,
                          count=int(lengths.sum()))
        types = None
        if self.types_from_encodings:
            types = np.fromiter(chain.from_iterable(e.type_ids for e in encodings),
                                dtype=np.int64, count=len(ids))
        excess = np.maximum(lengths - self.max_length, 0)  # passage tokens past the window
        over = excess > 0
        if over.any():  # drop them (they precede the closing special tokens)
            counts = excess[over]
            first = (np.cumsum(lengths) - self.trailing_specials)[over] - counts
            within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            keep = np.ones(len(ids), dtype=bool)
            keep[np.repeat(first, counts) + within] = False
            ids = ids[keep]
            types = types[keep] if types is not None else None
            lengths = lengths - excess
        starts = np.zeros(n, dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        if self.type_offset is not None:  # type 1 from the passage's first token on
            passage_start = np.fromiter((queries.tokens[q] for q, _ in picked), dtype=np.int64,
                                        count=n) + self.type_offset
            position = np.arange(len(ids)) - np.repeat(starts, lengths)
            types = (position >= np.repeat(passage_start, lengths)).astype(np.int64)
        cut_rows = over | np.fromiter((q in queries.cut for q, _ in picked), dtype=bool, count=n)
        return Encoded(np.asarray(index), ids, starts, lengths, types,
                       np.asarray(index, dtype=np.int64)[cut_rows])

    def _encode_pairs(self, texts: list[tuple[str, str]]) -> list:
        """Rust encodings of (query, passage) texts, truncated to the window plus
        ``cut_margin_tokens``, identical to encoding the passages whole.

        Tokenizing a passage costs time in proportion to its whole length, though only the
        first ``max_length`` tokens are kept (on SciFact abstracts, tokenization was what
        limited the engine on a GPU). So a passage longer than ``cut_chars_per_token`` characters
        per window token is first cut at a space past that point. The cut is kept only where
        its text still reaches the end of the margin: the window then lies a margin's worth of
        tokens before the cut, in whole words, and tokenization is local to words. Any other
        pair is encoded again whole.
        """
        limit = int(self.cut_chars_per_token * self.max_length)
        cut = []
        batch = []
        for j, (query, passage) in enumerate(texts):
            if len(passage) > limit:
                space = passage.find(" ", limit)
                if space > 0:
                    cut.append(j)
                    passage = passage[:space]
            batch.append((query, passage))
        encodings = self.backend.encode_batch_fast(batch, add_special_tokens=True)
        full = self.max_length + self.cut_margin_tokens
        redo = [j for j in cut if len(encodings[j]) < full]
        if redo:
            for j, enc in zip(redo, self.backend.encode_batch_fast(
                    [texts[j] for j in redo], add_special_tokens=True)):
                encodings[j] = enc
        return encodings
