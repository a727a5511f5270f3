"""Dataset loaders: one small class per source format, registered by config key.

A new format is one class with ``key`` and ``load()`` added to ``LOADERS``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from rerank_eval.datasets.base import Dataset, join_title_text, restrict_to_judged
from rerank_eval.datasets.formats import (
    read_beir_corpus,
    read_beir_queries,
    read_qrels,
    read_tsv_pairs,
)
from rerank_eval.errors import InputError
from rerank_eval.runs import check_id


class DatasetLoader:
    """Loads one source format into a :class:`Dataset`."""

    key: ClassVar[str]
    qrels_override: str | None = None

    def __init__(self, spec: Any, *, split: str, base_dir: Path):
        self.spec = spec
        self.split = split
        self.base_dir = base_dir

    def load(self) -> Dataset:
        raise NotImplementedError

    def _path(self, value: str) -> Path:
        path = Path(os.path.expanduser(str(value)))
        return path if path.is_absolute() else (self.base_dir / path)


def _check_qrels_ids(dataset: Dataset, qrels_path: Path | str) -> Dataset:
    unknown_docs = sorted({d for j in dataset.qrels.values() for d in j if d not in dataset.corpus})
    if unknown_docs:
        dataset.notes.append(
            f"{len(unknown_docs)} judged documents are not in the corpus "
            f"(e.g. {unknown_docs[0]!r}); they count as relevant-but-unretrieved, as in trec_eval"
        )
    unknown_queries = sorted(q for q in dataset.qrels if q not in dataset.queries)
    if unknown_queries:
        raise InputError(
            f"qrels name {len(unknown_queries)} queries not in the query file "
            f"(e.g. {unknown_queries[0]!r})",
            path=qrels_path,
        )
    return dataset


class BeirFolderLoader(DatasetLoader):
    """A local BEIR folder: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``."""

    key = "beir"

    def load(self) -> Dataset:
        folder = self._path(self.spec)
        if not folder.is_dir():
            raise InputError("BEIR folder not found", path=folder)
        qrels_path = folder / "qrels" / f"{self.split}.tsv"
        if self.qrels_override is not None:
            qrels_path = self._path(self.qrels_override)
        elif not qrels_path.is_file():
            available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
            raise InputError(f"no qrels for split {self.split!r} (found: {available})",
                             path=qrels_path)
        qrels = read_qrels(qrels_path)
        queries = read_beir_queries(folder / "queries.jsonl")
        corpus = read_beir_corpus(folder / "corpus.jsonl")
        split = self.split if self.qrels_override is None else qrels_path.name
        dataset = Dataset(
            id=f"beir:{folder.name}/{split}",
            corpus=corpus,
            queries=queries,
            qrels=qrels,
        )
        _check_qrels_ids(dataset, qrels_path)
        dataset.queries = restrict_to_judged(queries, qrels)
        return dataset


class TrecFilesLoader(DatasetLoader):
    """TREC-style files: queries tsv, qrels (TREC or BEIR tsv), collection tsv."""

    key = "trec"

    def load(self) -> Dataset:
        if not isinstance(self.spec, Mapping):
            raise InputError("dataset.trec: expected a mapping with queries, qrels, corpus")
        unknown = set(self.spec) - {"queries", "qrels", "corpus"}
        missing = {"queries", "qrels", "corpus"} - set(self.spec)
        if unknown:
            raise InputError(f"dataset.trec: unknown key {sorted(unknown)[0]!r}"
                             " (allowed: queries, qrels, corpus)")
        if missing:
            raise InputError(f"dataset.trec: missing key {sorted(missing)[0]!r}")
        qrels_path = self._path(self.spec["qrels"])
        qrels = read_qrels(qrels_path)
        queries = read_tsv_pairs(self._path(self.spec["queries"]), "query")
        corpus = read_tsv_pairs(self._path(self.spec["corpus"]), "doc")
        dataset = Dataset(id=f"trec:{qrels_path.stem}", corpus=corpus, queries=queries,
                          qrels=qrels)
        _check_qrels_ids(dataset, qrels_path)
        dataset.queries = restrict_to_judged(queries, qrels)
        return dataset


class BundledLoader(DatasetLoader):
    """Collections shipped inside the package (the offline quickstart)."""

    key = "bundled"

    def load(self) -> Dataset:
        root = resources.files("rerank_eval.datasets") / "data"
        folder = Path(str(root / str(self.spec)))
        if not folder.is_dir():
            names = sorted(p.name for p in Path(str(root)).iterdir() if p.is_dir())
            raise InputError(f"dataset.bundled: unknown collection {self.spec!r} "
                             f"(available: {names})")
        dataset = BeirFolderLoader(str(folder), split=self.split, base_dir=folder).load()
        dataset.id = f"bundled:{self.spec}/{self.split}"
        return dataset


IRDS_OFFLINE_HELP = (
    "ir_datasets could not download {id!r} ({reason}). Offline, pre-populate its cache: set "
    "IR_DATASETS_HOME to a folder holding the source files where ir_datasets expects them "
    "(e.g. $IR_DATASETS_HOME/beir/scifact/source.zip, $IR_DATASETS_HOME/cranfield/cran.tar.gz),"
    " or use a local copy with dataset: {{beir: PATH}} or {{trec: {{...}}}}"
)


class IrDatasetsLoader(DatasetLoader):
    """Any ``ir_datasets`` id, loaded through ir_datasets itself."""

    key = "irds"

    def load(self) -> Dataset:
        import ir_datasets

        dataset_id = str(self.spec)
        try:
            irds = ir_datasets.load(dataset_id)
        except KeyError:
            raise InputError(f"dataset.irds: unknown ir_datasets id {dataset_id!r}") from None
        for needed in ("docs", "queries", "qrels"):
            if not getattr(irds, f"has_{needed}")():
                raise InputError(f"dataset.irds: {dataset_id!r} has no {needed}")
        try:
            qrels: dict[str, dict[str, int]] = {}
            for qrel in irds.qrels_iter():
                qrels.setdefault(str(qrel.query_id), {})[str(qrel.doc_id)] = int(qrel.relevance)
            queries = {str(q.query_id): _irds_query_text(q) for q in irds.queries_iter()}
            corpus = {str(d.doc_id): _irds_doc_text(d) for d in irds.docs_iter()}
        except Exception as e:  # noqa: BLE001 - ir_datasets raises many types on download failure
            if isinstance(e, InputError):
                raise
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".strip()
            raise InputError(IRDS_OFFLINE_HELP.format(id=dataset_id, reason=reason[:200])) from None
        where = f"ir_datasets:{dataset_id}"
        for what, ids in (("query", queries), ("document", corpus), ("query", qrels)):
            for key in ids:
                check_id(key, what, where, None)
        for judged in qrels.values():
            for key in judged:
                check_id(key, "document", where, None)
        dataset = Dataset(id=f"irds:{dataset_id}", corpus=corpus, queries=queries, qrels=qrels)
        _check_qrels_ids(dataset, where)
        dataset.queries = restrict_to_judged(queries, qrels)
        return dataset


def _irds_doc_text(doc: Any) -> str:
    fields = doc._asdict() if hasattr(doc, "_asdict") else {}
    if "title" in fields and "text" in fields:
        return join_title_text(fields["title"], fields["text"])
    if hasattr(doc, "default_text"):
        return doc.default_text()
    return str(fields.get("text", ""))


def _irds_query_text(query: Any) -> str:
    fields = query._asdict() if hasattr(query, "_asdict") else {}
    if "text" in fields:
        return str(fields["text"])
    if hasattr(query, "default_text"):
        return query.default_text()
    raise InputError(f"ir_datasets query {query!r} has no text field")


LOADERS: dict[str, type[DatasetLoader]] = {
    cls.key: cls for cls in (BeirFolderLoader, TrecFilesLoader, IrDatasetsLoader, BundledLoader)
}
