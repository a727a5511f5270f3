"""Reading results.json: the contract later tools, CI and users' scripts read (the runner
writes it: ``runner/results.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rerank_eval.errors import InputError

SCHEMA_VERSION = 1

# Fields that measure this run on this machine (time, load, hardware) rather than describe its
# results: the same config twice agrees on everything else, byte for byte.
MEASUREMENT_KEYS = frozenset({
    "timings_s", "hardware", "latency_ms", "throughput", "executor",
    "request_latency_ms", "request_latency_summary_ms", "reasoning",
    "latency_hardware", "latency_ms_by_hardware", "latency_where",
})


def strip_measurements(value: Any) -> Any:
    """``value`` (a results.json tree) without measurement fields: MEASUREMENT_KEYS and every
    key ending in ``_s`` (seconds)."""
    if isinstance(value, dict):
        return {k: strip_measurements(v) for k, v in value.items()
                if k not in MEASUREMENT_KEYS and not k.endswith("_s")}
    if isinstance(value, list):
        return [strip_measurements(v) for v in value]
    return value


def read_results_json(path: Path) -> dict[str, Any]:
    """Load a results.json written by ``rerank-eval run``; bad files are a one-line error."""
    if not path.is_file():
        raise InputError("results file not found", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON ({e.msg})", path=path, line=e.lineno) from None
    except UnicodeDecodeError:
        raise InputError("not valid UTF-8", path=path) from None
    required = {"schema_version", "first_stage", "rerankers"}
    if not isinstance(data, dict) or not required <= set(data):
        raise InputError("not a rerank-eval results.json (no schema_version/first_stage/"
                         "rerankers)", path=path)
    return data
