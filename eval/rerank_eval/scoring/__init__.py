"""Scoring a shortlist with a reranker: chunks, the score cache, executors (local, Ray) and
latency probes. Sits above the rerankers; the inference engine is ``rerank_eval.engine``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rerank_eval.errors import InputError

if TYPE_CHECKING:
    from rerank_eval.scoring.executors import Executor, ExecutorConfig

RAY_INSTALL_HELP = (
    "executor: ray needs the Ray package, which is not installed "
    "(pip install 'rerank-eval[ray]', or pip install 'ray>=2.9')"
)


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def make_executor(config: ExecutorConfig, **kwargs: Any) -> Executor:
    """The executor a config asks for; ``ray`` without Ray installed is a one-line InputError."""
    from rerank_eval.scoring.executors import LocalExecutor

    if config.kind == "local":
        return LocalExecutor(**kwargs)
    if config.kind == "ray":
        if not ray_available():
            raise InputError(RAY_INSTALL_HELP)
        from rerank_eval.scoring.ray_executor import RayExecutor

        return RayExecutor(config, **kwargs)
    raise InputError(f"executor: unknown executor {config.kind!r}")
