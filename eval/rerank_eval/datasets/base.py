"""The one shape every dataset loader produces: corpus, queries, qrels."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

DOC_TEXT_RULE = "document text = title + ' ' + text where both exist (BEIR convention)"

Qrels = dict[str, dict[str, int]]


def join_title_text(title: str | None, text: str | None) -> str:
    """Title and text joined with one space; either may be missing."""
    title = (title or "").strip()
    text = (text or "").strip()
    return f"{title} {text}" if title and text else (title or text)


@dataclass
class Dataset:
    """A passage-ranking test collection.

    ``corpus`` maps doc id to the text fed to models (title + text already joined), ``queries``
    maps query id to text and only holds the judged queries of the chosen split, ``qrels`` maps
    query id to {doc id: graded relevance}.
    """

    id: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: Qrels
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "id": self.id,
            "queries": len(self.queries),
            "documents": len(self.corpus),
            "qrels": sum(len(j) for j in self.qrels.values()),
        }

    def sample_queries(self, n: int, seed: int) -> Dataset:
        """A seeded subset of ``n`` judged queries (all of them when ``n`` >= their count)."""
        ids = sorted(self.queries)
        if n < len(ids):
            ids = sorted(random.Random(seed).sample(ids, n))
        keep = set(ids)
        return Dataset(
            id=f"{self.id}[sample={n},seed={seed}]",
            corpus=self.corpus,
            queries={q: self.queries[q] for q in ids},
            qrels={q: j for q, j in self.qrels.items() if q in keep},
            notes=list(self.notes),
        )


def restrict_to_judged(queries: dict[str, str], qrels: Qrels) -> dict[str, str]:
    """Queries that have at least one judgment in the qrels (the evaluated set)."""
    return {q: t for q, t in queries.items() if q in qrels}
