"""What a reranker's raw scores look like: quantiles and a histogram, relevant vs. the rest.

Stored in results.json so a report (or a merge of several) can plot the distribution from
results files alone. Judged-relevant means grade >= the relevance threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def score_distribution(
    model_scores: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    threshold: int,
    bins: int = 40,
) -> dict[str, Any]:
    """Count, mean, std, quantiles and a shared-edge histogram of relevant / other pairs."""
    rel: list[float] = []
    other: list[float] = []
    for q, docs in model_scores.items():
        judged = qrels.get(q, {})
        for d, s in docs.items():
            (rel if judged.get(d, 0) >= threshold else other).append(s)
    all_scores = np.asarray(rel + other, dtype=np.float64)
    all_scores = all_scores[np.isfinite(all_scores)]
    if all_scores.size == 0:
        return {"count": 0}
    lo, hi = float(all_scores.min()), float(all_scores.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    return {
        "count": int(all_scores.size),
        "relevant_count": len(rel),
        "min": lo,
        "max": hi,
        "mean": float(all_scores.mean()),
        "std": float(all_scores.std()),
        "quantiles": {f"p{round(p * 100)}": float(v)
                      for p, v in zip(QUANTILES, np.quantile(all_scores, QUANTILES))},
        "histogram": {
            "edges": [float(e) for e in edges],
            "relevant": np.histogram(np.asarray(rel, dtype=float), edges)[0].tolist(),
            "other": np.histogram(np.asarray(other, dtype=float), edges)[0].tolist(),
        },
        "relevant_rule": f"judged grade >= {threshold}",
    }
