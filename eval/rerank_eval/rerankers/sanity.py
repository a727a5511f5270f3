"""Sanity probes: obvious (query, relevant, irrelevant) triples a working reranker orders right.

Wrong label index, swapped pair order and sign errors are the classic silent failures of this
field; they show up here as inverted probes before any metric is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rerank_eval.rerankers.base import Reranker

PROBES: list[tuple[str, str, str]] = [
    ("what is the capital of france",
     "Paris is the capital and largest city of France.",
     "Bananas are rich in potassium and grow in tropical climates."),
    ("how many legs does a spider have",
     "Spiders have eight legs, unlike insects, which have six.",
     "The stock market closed higher on Tuesday after strong earnings reports."),
    ("symptoms of vitamin d deficiency",
     "Vitamin D deficiency can cause bone pain, muscle weakness and fatigue.",
     "The Eiffel Tower was completed in 1889 for the World's Fair."),
    ("boiling point of water at sea level",
     "At sea level, water boils at 100 degrees Celsius (212 degrees Fahrenheit).",
     "Jazz originated in New Orleans in the late nineteenth century."),
    ("who wrote pride and prejudice",
     "Pride and Prejudice is an 1813 novel by Jane Austen.",
     "A router forwards data packets between computer networks."),
    ("how to reset a forgotten email password",
     "To reset a forgotten password, click 'Forgot password' on the sign-in page and follow "
     "the link sent to your recovery address.",
     "Photosynthesis converts light energy into chemical energy in plants."),
]


@dataclass
class SanityResult:
    probes: int
    inverted: int
    # Each inverted probe: (query, relevant passage's score, irrelevant passage's score).
    inverted_probes: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """More than half the obvious pairs ordered the wrong way round."""
        return self.inverted * 2 > self.probes

    def as_dict(self) -> dict:
        return {"probes": self.probes, "inverted": self.inverted, "failed": self.failed,
                "inverted_probes": [{"query": q, "relevant_score": r, "irrelevant_score": i}
                                    for q, r, i in self.inverted_probes]}


def run_sanity_probes(reranker: Reranker) -> SanityResult:
    """Score the probes without counting them in the reranker's statistics."""
    saved = (reranker.stats.pairs_scored, reranker.stats.pairs_truncated)
    pairs = [(q, p) for q, rel, irr in PROBES for p in (rel, irr)]
    scores = reranker.score(pairs)
    reranker.stats.pairs_scored, reranker.stats.pairs_truncated = saved
    inverted = [(PROBES[i][0], float(scores[2 * i]), float(scores[2 * i + 1]))
                for i in range(len(PROBES)) if scores[2 * i] <= scores[2 * i + 1]]
    return SanityResult(probes=len(PROBES), inverted=len(inverted), inverted_probes=inverted)
