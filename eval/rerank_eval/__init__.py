"""rerank-eval: evaluation and benchmarking harness for rerankers.

Python API (README, "Python API")::

    from rerank_eval import load_config, run_experiment
    result = run_experiment(load_config("configs/quickstart.yaml"), out_dir="reports/qs")

Names are imported on first use (no static import here), so ``import rerank_eval`` stays
light and every layer may read ``__version__`` without depending on the runner.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {
    "load_config": "rerank_eval.config",
    "parse_config": "rerank_eval.config",
    "run_experiment": "rerank_eval.runner.run",
    "run_sweep": "rerank_eval.runner.run",
}
__all__ = ["__version__", *_API]



def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'rerank_eval' has no attribute {name!r}")
