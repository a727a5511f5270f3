"""Metric names as users write them (``ndcg@10``) and what they mean."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rerank_eval.errors import InputError

# user-facing name -> (canonical name, ranx name, binary?)
_ALIASES = {
    "ndcg": "ndcg",
    "ndcg_cut": "ndcg",
    "mrr": "mrr",
    "rr": "mrr",
    "recip_rank": "mrr",
    "recall": "recall",
    "r": "recall",
    "map": "map",
    "ap": "map",
    "map_cut": "map",
    "precision": "p",
    "p": "p",
}
_RANX_NAME = {"ndcg": "ndcg", "mrr": "mrr", "recall": "recall", "map": "map", "p": "precision"}
_TREC_EVAL_NAME = {
    "ndcg": "ndcg_cut",
    "mrr": "recip_rank",
    "recall": "recall",
    "map": "map_cut",
    "p": "P",
}
_PATTERN = re.compile(r"^([a-z_]+)(?:@(\d+))?$")


@dataclass(frozen=True)
class MetricSpec:
    """One metric at one cutoff. ``k=None`` means the whole ranking."""

    measure: str
    k: int | None

    @property
    def name(self) -> str:
        return self.measure if self.k is None else f"{self.measure}@{self.k}"

    @property
    def binary(self) -> bool:
        """Binary metrics count a document as relevant when its grade >= the threshold."""
        return self.measure != "ndcg"

    def ranx_name(self, threshold: int) -> str:
        base = _RANX_NAME[self.measure] + ("" if self.k is None else f"@{self.k}")
        return f"{base}-l{threshold}" if self.binary else base

    @property
    def trec_eval_equivalent(self) -> str:
        name = _TREC_EVAL_NAME[self.measure]
        if self.measure == "mrr":
            return name if self.k is None else f"recip_rank on the top {self.k}"
        if self.k is None:
            return {"ndcg_cut": "ndcg", "map_cut": "map"}.get(name, name)
        return f"{name}_{self.k}" if self.measure != "p" else f"P_{self.k}"


def parse_metric(text: str, field: str = "metrics") -> MetricSpec:
    match = _PATTERN.match(text.strip().lower())
    if not match or match.group(1) not in _ALIASES:
        raise InputError(
            f"{field}: unknown metric {text!r} (use ndcg@k, mrr@k, recall@k, map@k, p@k)"
        )
    measure = _ALIASES[match.group(1)]
    k = int(match.group(2)) if match.group(2) else None
    if k is not None and k < 1:
        raise InputError(f"{field}: metric cutoff must be >= 1 in {text!r}")
    if k is None and measure in {"recall", "p"}:
        raise InputError(f"{field}: {text!r} needs a cutoff, e.g. {measure}@100")
    return MetricSpec(measure, k)


def parse_metrics(texts: list[str], field: str = "metrics") -> list[MetricSpec]:
    specs = [parse_metric(t, field) for t in texts]
    seen: set[str] = set()
    unique = []
    for spec in specs:
        if spec.name not in seen:
            seen.add(spec.name)
            unique.append(spec)
    return unique
