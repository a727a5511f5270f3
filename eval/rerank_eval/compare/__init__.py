"""Compare systems with paired statistics, and gate a candidate against a baseline.

The names below load on first use, so importing a light submodule (``compare.options``, as the
CLI does) does not import ranx and scipy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ComparisonReport": "rerank_eval.compare.compare",
    "compare_systems": "rerank_eval.compare.compare",
    "LatencyRule": "rerank_eval.compare.gate",
    "MetricRule": "rerank_eval.compare.gate",
    "Verdict": "rerank_eval.compare.gate",
    "run_gate": "rerank_eval.compare.gate",
    "System": "rerank_eval.compare.systems",
    "load_systems": "rerank_eval.compare.systems",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
