"""Long documents: score a shortlist whose passages are split into token windows, then
aggregate each document's window scores (``long_docs: {strategy: maxp | sump | firstp}``).

The windows form a derived dataset (corpus: one entry per window, keyed ``<doc id>#w<i>``)
and shortlist, scored by the executor like any other: the score cache keys on each window's
text, so changing the strategy (maxp -> sump, or firstp, whose windows are maxp's first ones)
reuses every window already scored.
"""

from __future__ import annotations

from dataclasses import dataclass

from rerank_eval.datasets import Dataset
from rerank_eval.rerankers.base import LongDocsConfig, Reranker
from rerank_eval.runs import Run
from rerank_eval.scoring.cache import ScoreCache
from rerank_eval.scoring.executors import Executor

WINDOW_SEP = "#w"


@dataclass
class WindowedShortlist:
    """The window dataset and shortlist, and which windows belong to which document."""

    dataset: Dataset
    shortlist: Run
    windows: dict[str, list[str]]  # doc id -> its window ids
    documents: int  # (query, document) pairs of the original shortlist
    pairs: int  # (query, window) pairs

    def documents_split(self, shortlist: Run) -> int:
        """(query, document) pairs whose document became more than one window."""
        return sum(1 for ranked in shortlist.ranking.values() for d in ranked
                   if len(self.windows[d]) > 1)

    def window_texts(self) -> dict[str, list[str]]:
        """doc id -> its windows' texts (what latency probes score in its place)."""
        return {d: [self.dataset.corpus[w] for w in ids] for d, ids in self.windows.items()}


def split_shortlist(reranker: Reranker, dataset: Dataset, shortlist: Run,
                    cfg: LongDocsConfig) -> WindowedShortlist:
    """Every shortlisted document split into windows by ``reranker``'s tokenizer."""
    docs = sorted({d for ranked in shortlist.ranking.values() for d in ranked})
    texts = reranker.passage_windows([dataset.corpus[d] for d in docs], cfg.passage_tokens,
                                     cfg.stride, first_only=cfg.strategy == "firstp")
    corpus: dict[str, str] = {}
    windows: dict[str, list[str]] = {}
    for d, parts in zip(docs, texts, strict=True):
        ids = [f"{d}{WINDOW_SEP}{i}" for i in range(len(parts))]
        corpus.update(zip(ids, parts, strict=True))
        windows[d] = ids
    ranking = {q: [w for d in ranked for w in windows[d]]
               for q, ranked in shortlist.ranking.items()}
    derived = Dataset(id=dataset.id, corpus=corpus, queries=dataset.queries, qrels={})
    return WindowedShortlist(derived, Run(shortlist.name, ranking), windows,
                             documents=shortlist.num_pairs(),
                             pairs=sum(len(r) for r in ranking.values()))


def aggregate(window_scores: dict[str, dict[str, float]], split: WindowedShortlist,
              shortlist: Run, strategy: str) -> dict[str, dict[str, float]]:
    """Document scores from window scores: max (maxp, firstp: one window) or sum (sump)."""
    combine = sum if strategy == "sump" else max
    return {q: {d: float(combine(window_scores[q][w] for w in split.windows[d]))
                for d in ranked} for q, ranked in shortlist.ranking.items()}


def score_documents(executor: Executor, reranker: Reranker, dataset: Dataset, shortlist: Run,
                    cache: ScoreCache | None, cfg: LongDocsConfig | None
                    ) -> tuple[dict[str, dict[str, float]], WindowedShortlist | None]:
    """Document scores for the shortlist, through windows when ``cfg`` asks for them (and
    the windows then; None: passages scored whole, ``first`` truncating them)."""
    if cfg is None or cfg.strategy == "first":
        return executor.score(reranker, dataset, shortlist, cache=cache), None
    split = split_shortlist(reranker, dataset, shortlist, cfg)
    scores = executor.score(reranker, split.dataset, split.shortlist, cache=cache)
    return aggregate(scores, split, shortlist, cfg.strategy), split
