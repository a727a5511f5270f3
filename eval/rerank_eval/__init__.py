"""rerank-eval: evaluation and benchmarking harness for cross-encoder rerankers.

Pipeline vocabulary: datasets -> first_stage -> rerankers -> scoring -> metrics -> reports.
"""

__version__ = "0.1.0"
