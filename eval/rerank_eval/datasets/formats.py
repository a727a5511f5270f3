"""Readers for the file formats datasets come in: BEIR jsonl/tsv and TREC text files.

Every reader reports bad input as an InputError naming the file and line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from rerank_eval.datasets.base import Qrels, join_title_text
from rerank_eval.errors import InputError
from rerank_eval.runs import check_id


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with 1-based line numbers, decoded strictly as UTF-8."""
    if not path.is_file():
        raise InputError("file not found", path=path)
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"not valid UTF-8 ({e.reason})", path=path, line=line_no) from None
            line = line.rstrip("\r\n")
            if line.strip():
                yield line_no, line


def _json_object(path: Path, line_no: int, line: str) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON ({e.msg})", path=path, line=line_no) from None
    except RecursionError:
        raise InputError("invalid JSON (nested too deeply)", path=path, line=line_no) from None
    if not isinstance(obj, dict):
        raise InputError("expected a JSON object", path=path, line=line_no)
    return obj


def _string_field(obj: dict, key: str, path: Path, line_no: int, required: bool = True) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise InputError(f"missing field {key!r}", path=path, line=line_no)
        return ""
    if key == "_id":
        # Integer ids are common in BEIR exports; floats, booleans and empty ids are not ids.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"field {key!r} must be a non-empty string or an integer, "
                             f"got {value!r}"[:200], path=path, line=line_no)
        return value
    if not isinstance(value, str):
        raise InputError(f"field {key!r} must be a string", path=path, line=line_no)
    return value


def read_beir_corpus(path: Path) -> dict[str, str]:
    corpus: dict[str, str] = {}
    for line_no, line in iter_lines(path):
        obj = _json_object(path, line_no, line)
        doc_id = check_id(_string_field(obj, "_id", path, line_no), "document", path, line_no)
        if doc_id in corpus:
            raise InputError(f"duplicate document id {doc_id!r}", path=path, line=line_no)
        title = _string_field(obj, "title", path, line_no, required=False)
        text = _string_field(obj, "text", path, line_no, required=False)
        corpus[doc_id] = join_title_text(title, text)
    if not corpus:
        raise InputError("no documents found", path=path)
    return corpus


def read_beir_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for line_no, line in iter_lines(path):
        obj = _json_object(path, line_no, line)
        qid = check_id(_string_field(obj, "_id", path, line_no), "query", path, line_no)
        if qid in queries:
            raise InputError(f"duplicate query id {qid!r}", path=path, line=line_no)
        queries[qid] = _string_field(obj, "text", path, line_no)
    return queries


# An integer grade, optionally written "2.0"; ASCII digits only (Python's int() would also take
# "1_0" or full-width digits and silently read a different number than the author meant).
INTEGER_GRADE = re.compile(r"[+-]?[0-9]+(\.0*)?")


QRELS_FORMATS = {3: "BEIR 'query-id corpus-id score'", 4: "TREC 'qid iter docid rel'"}


def read_qrels(path: Path) -> Qrels:
    """Qrels as BEIR tsv (``query-id corpus-id score``, optional header) or TREC
    (``qid iter docid rel``). The format is decided once per file, by the header or else the
    first data line's column count, and every line must match it: a TREC line that lost a
    column (``2 0 7``) is an error, not a BEIR judgment of document 0."""
    qrels: Qrels = {}
    columns: int | None = None  # 3: BEIR, 4: TREC
    decided_by = ""
    for line_no, line in iter_lines(path):
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [p.strip() for p in parts]
        if columns is None and parts and parts[0].lower() in {"query-id", "query_id", "qid"}:
            columns, decided_by = 3, f"its header on line {line_no}"
            continue  # the header, on the first non-blank line
        if columns is None:
            if len(parts) not in QRELS_FORMATS:
                raise InputError(
                    "expected 'query-id corpus-id score' (BEIR) or 'qid iter docid rel' "
                    f"(TREC), found {len(parts)} columns", path=path, line=line_no)
            columns, decided_by = len(parts), f"line {line_no}"
        if len(parts) != columns:
            raise InputError(
                f"expected {columns} columns ({QRELS_FORMATS[columns]}, the format of this "
                f"file by {decided_by}), found {len(parts)}", path=path, line=line_no)
        if columns == 3:
            qid, doc_id, grade = parts
        else:
            qid, _, doc_id, grade = parts
        if not INTEGER_GRADE.fullmatch(grade):
            raise InputError(
                f"relevance must be an integer, got {grade!r}"[:200], path=path, line=line_no
            )
        rel = int(grade.split(".")[0])
        if not qid or not doc_id:
            raise InputError("empty query or document id", path=path, line=line_no)
        check_id(qid, "query", path, line_no)
        check_id(doc_id, "document", path, line_no)
        judged = qrels.setdefault(qid, {})
        if doc_id in judged and judged[doc_id] != rel:
            raise InputError(
                f"conflicting judgments for query {qid!r}, doc {doc_id!r}: "
                f"{judged[doc_id]} and {rel}",
                path=path,
                line=line_no,
            )
        judged[doc_id] = rel
    if not qrels:
        raise InputError("no judgments found", path=path)
    return qrels


def read_tsv_pairs(path: Path, what: str) -> dict[str, str]:
    """``id<TAB>text`` files (TREC/MS MARCO queries and collection)."""
    out: dict[str, str] = {}
    for line_no, line in iter_lines(path):
        if "\t" not in line:
            raise InputError(f"expected '{what}-id<TAB>text'", path=path, line=line_no)
        key, text = line.split("\t", 1)
        key = key.strip()
        if not key:
            raise InputError(f"empty {what} id", path=path, line=line_no)
        check_id(key, what, path, line_no)
        if key in out:
            raise InputError(f"duplicate {what} id {key!r}", path=path, line=line_no)
        out[key] = text.strip()
    if not out:
        plural = {"doc": "documents", "query": "queries"}.get(what, f"{what}s")
        raise InputError(f"no {plural} found", path=path)
    return out
