"""The ``dataset:`` section: where the collection comes from (exactly one source key), the
split, an optional seeded query sample."""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from rerank_eval.params import Bool, Int, NonEmptyStr, Params, PositiveInt, Str, field_error

DATASET_SOURCES = ("beir", "irds", "trec", "bundled")


class SampleConfig(Params):
    """A seeded random sample of the judged queries."""

    queries: PositiveInt
    """How many queries to keep."""
    seed: Int = 0


class TrecFiles(Params):
    """TREC-style files, relative to the config's folder."""

    queries: NonEmptyStr
    """Queries tsv (id, text)."""
    qrels: NonEmptyStr
    """Judgments: TREC qrels or BEIR tsv."""
    corpus: NonEmptyStr
    """Collection tsv (id, text)."""


class DatasetConfig(Params):
    """One collection: give exactly one of ``beir``, ``irds``, ``trec``, ``bundled``."""

    beir: NonEmptyStr | None = None
    """A local BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)."""
    irds: NonEmptyStr | None = None
    """An ir_datasets id, e.g. beir/scifact/test."""
    trec: TrecFiles | None = None
    bundled: NonEmptyStr | None = None
    """A collection shipped with the package, e.g. quickstart."""
    split: Str = "test"
    sample: SampleConfig | None = None
    drop_self_matches: Bool = False
    """Drop candidates whose id is the query's (ArguAna-style collections)."""
    qrels: Str | None = None
    """Another judgments file for a beir folder (e.g. official TREC qrels)."""

    @classmethod
    def _check_raw(cls, data: dict[Any, Any]) -> dict[Any, Any]:
        if sum(data.get(k) is not None for k in DATASET_SOURCES) != 1:
            raise field_error(f"give exactly one of {', '.join(DATASET_SOURCES)}")
        return data

    @model_validator(mode="after")
    def _qrels_only_with_beir(self) -> DatasetConfig:
        if self.qrels is not None and self.beir is None:
            raise field_error("a qrels file path, only with a beir folder", "qrels")
        return self

    @property
    def source(self) -> str:
        """Which source key is given (beir, irds, trec or bundled)."""
        return next(k for k in DATASET_SOURCES if getattr(self, k) is not None)

    @property
    def spec(self) -> Any:
        """The source's value: a folder, an id, a collection name, or the trec files."""
        value = getattr(self, self.source)
        return value.model_dump() if isinstance(value, TrecFiles) else value
