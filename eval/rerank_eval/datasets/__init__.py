"""Datasets: one interface (corpus, queries, qrels) over many source formats."""

from __future__ import annotations

from pathlib import Path

from rerank_eval.datasets.base import DOC_TEXT_RULE, Dataset
from rerank_eval.datasets.config import DatasetConfig, SampleConfig
from rerank_eval.datasets.loaders import LOADERS, DatasetLoader


def load_dataset(source: str, spec: object, *, split: str = "test",
                 base_dir: Path | None = None, qrels: str | None = None) -> Dataset:
    """Load a dataset given its source kind (``beir``, ``trec``, ``irds``, ``bundled``).

    ``qrels`` (BEIR folders only) replaces ``qrels/<split>.tsv`` with another judgments file,
    e.g. official TREC qrels for a pool slice.
    """
    loader = LOADERS[source](spec, split=split, base_dir=base_dir or Path.cwd())
    if qrels is not None:
        loader.qrels_override = qrels
    return loader.load()


__all__ = ["DOC_TEXT_RULE", "Dataset", "DatasetConfig", "DatasetLoader", "LOADERS",
           "SampleConfig", "load_dataset"]
