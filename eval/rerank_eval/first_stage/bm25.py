"""BM25 over the corpus with bm25s (sparse matrices), Anserini's defaults."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from rerank_eval.datasets import Dataset
from rerank_eval.errors import InputError
from rerank_eval.first_stage.base import FirstStage, FirstStageParams
from rerank_eval.params import NonNegativeNumber, Str, expected, field_error
from rerank_eval.progress import Progress, progress_bars
from rerank_eval.runs import Run

logger = logging.getLogger(__name__)

QUERIES_PER_BATCH = 1000  # retrieval goes batch by batch, for the progress bar


def _bm25s():
    """bm25s, with its logger at WARNING: it sets itself to DEBUG on import, so any handler on
    the root logger (a notebook's, a test's) would print its internal steps."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


class BM25Params(FirstStageParams):
    """``bm25``: Lucene-variant BM25 with Anserini's defaults."""

    k1: NonNegativeNumber = 0.9
    b: Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)] = 0.4
    """Length normalisation, from 0 (none) to 1 (full)."""
    stemmer: Str | None = "english"
    """A Snowball stemmer (PyStemmer) name; null: no stemming."""
    stopwords: Annotated[Str | list[Str] | None,
                         expected("a language code, a list of words, or null")] = "en"
    """A language code, a list of words, or null."""
    method: Literal["lucene", "robertson", "atire", "bm25l", "bm25+"] = "lucene"

    @field_validator("stemmer", mode="after")
    @classmethod
    def _known_stemmer(cls, name: str | None) -> str | None:
        if name:
            import Stemmer

            try:
                Stemmer.Stemmer(name)
            except KeyError:
                raise field_error(f"unknown stemmer {name!r} "
                                  f"(available: {', '.join(Stemmer.algorithms())})") from None
        return name


class BM25(FirstStage):
    """Lucene-variant BM25. Defaults follow Anserini: k1=0.9, b=0.4, Porter-style (Snowball
    English) stemming, English stopwords."""

    key = "bm25"
    Params = BM25Params
    params: BM25Params
    #: (dataset id, retriever, stemmer, stopwords, documents), set by :meth:`retrieve`.
    _index: tuple[str, Any, Any, str | list[str] | None, int] | None

    def retrieve(self, dataset: Dataset, depth: int) -> Run:
        bm25s = _bm25s()
        stemmer = self._stemmer()
        stopwords = self.params.stopwords or None
        doc_ids = list(dataset.corpus)
        # Indexing is one call per phase: bm25s's own bars (tokenize, count, score) show it.
        bars = progress_bars()
        with Progress("bm25: indexing", len(doc_ids), unit="documents", done="bm25: indexed",
                      bar=False, logger=logger) as step:
            corpus_tokens = bm25s.tokenize(
                [dataset.corpus[d] for d in doc_ids], stopwords=stopwords, stemmer=stemmer,
                show_progress=bars,
            )
            if not any(len(tokens) for tokens in corpus_tokens.ids):
                raise InputError(f"bm25: the corpus of {dataset.id} has no indexable words "
                                 f"(its {len(doc_ids)} documents are empty or stopwords only)")
            retriever = bm25s.BM25(k1=float(self.params.k1), b=float(self.params.b),
                                   method=str(self.params.method))
            retriever.index(corpus_tokens, show_progress=bars)
            step.update(len(doc_ids))
        self._index = (dataset.id, retriever, stemmer, stopwords, len(doc_ids))

        query_ids = list(dataset.queries)
        k = min(depth, len(doc_ids))
        query_tokens = bm25s.tokenize(
            [dataset.queries[q] for q in query_ids], stopwords=stopwords, stemmer=stemmer,
            show_progress=False, return_ids=False,
        )
        scores: dict[str, dict[str, float]] = {q: {} for q in query_ids}
        # An all-stopword (or out-of-vocabulary) query gets no results rather than an error.
        known = [[t for t in tokens if t in retriever.vocab_dict] for tokens in query_tokens]
        batch = [i for i, tokens in enumerate(known) if tokens]
        # Each query is retrieved on its own: batches give the same results as one call.
        with Progress("bm25: retrieving", len(query_ids), unit="queries",
                      done=f"bm25: retrieved top-{k} for", logger=logger) as bar:
            bar.update(len(query_ids) - len(batch))  # nothing to retrieve
            for lo in range(0, len(batch), QUERIES_PER_BATCH):
                part = batch[lo : lo + QUERIES_PER_BATCH]
                idx, vals = retriever.retrieve([known[i] for i in part], k=k,
                                               show_progress=False, return_as="tuple",
                                               n_threads=1)
                for row, i in enumerate(part):
                    scores[query_ids[i]] = {
                        doc_ids[int(d)]: float(v) for d, v in zip(idx[row], vals[row]) if v > 0
                    }
                bar.update(len(part))
        return Run.from_scores("bm25", scores)

    def query_searcher(self, dataset: Dataset, depth: int) -> Callable[[str], Any] | None:
        """Tokenize and retrieve one query against the index built by :meth:`retrieve`."""
        bm25s = _bm25s()

        index = getattr(self, "_index", None)
        if index is None or index[0] != dataset.id:
            self.retrieve(dataset, depth)
            index = self._index
            assert index is not None  # set by retrieve
        _, retriever, stemmer, stopwords, n_docs = index
        k = min(depth, n_docs)

        def search(text: str) -> Any:
            tokens = bm25s.tokenize([text], stopwords=stopwords, stemmer=stemmer,
                                    show_progress=False, return_ids=False)[0]
            known = [t for t in tokens if t in retriever.vocab_dict]
            if not known:
                return None
            return retriever.retrieve([known], k=k, show_progress=False, return_as="tuple",
                                      n_threads=1)

        return search

    def close(self) -> None:
        self._index = None

    def _stemmer(self):
        name = self.params.stemmer
        if not name:
            return None
        import Stemmer

        return Stemmer.Stemmer(name)

