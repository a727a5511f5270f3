"""The runner: validation, execution and result writing of experiments and sweeps
(``run.py``), built from the steps in ``steps.py``."""

from rerank_eval.runner.run import run_experiment, run_sweep

__all__ = ["run_experiment", "run_sweep"]
