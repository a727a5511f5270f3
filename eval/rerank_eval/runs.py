"""Runs: ranked lists of documents per query, their canonical order, and TREC run files.

Conventions (pinned, and stated in every report):
- Order: score descending; ties broken by document id descending (byte order), exactly as
  trec_eval sorts them. Everything downstream works on the ordered list, never on raw scores.
- Saved runs carry strictly decreasing scores derived from the rank (``n - rank + 1``), so any
  tool (trec_eval, ranx, pytrec_eval) reads the same order regardless of its own tie rule.
  Raw model scores are saved separately.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rerank_eval.errors import InputError
from rerank_eval.files import atomic_open

TIE_RULE = "score descending, ties by doc id descending (trec_eval order)"
SAVED_SCORE_RULE = "saved runs use strictly decreasing rank-derived scores (n - rank + 1)"


# ASCII numbers only: Python's float() also reads "1_0" as 10 or full-width digits.
RANK = re.compile(r"[+-]?[0-9]+")
NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|infinity|nan)",
                    re.IGNORECASE)


def id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a query or document id, or None when it can.

    Ids are written into TREC run and qrels lines, whose columns are separated by whitespace,
    and into TSV and CSV files: an id holding whitespace (any Unicode space, tab or line
    break) or a control character (NUL, DEL, ...) would split or end those lines, so another
    tool would read other ids, or other numbers, than this one did.
    """
    if not value:
        return "is empty"
    bad = _BAD_ID_CHAR.search(value)
    if bad is None:
        return None
    c = bad.group()
    return f"holds whitespace ({c!r})" if c.isspace() else f"holds a control character ({c!r})"


# Unicode whitespace (what str.split() splits on) and the C0/C1 control characters (Cc).
_BAD_ID_CHAR = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def check_id(value: str, what: str, path: str | Path, line: int | None) -> str:
    """``value`` if it can be a ``what`` id (see :func:`id_problem`), else a one-line
    InputError naming the file and line."""
    problem = id_problem(value)
    if problem is not None:
        raise InputError(f"{what} id {_short(value)} {problem}: ids are written into TREC "
                         "lines, which whitespace and control characters break",
                         path=path, line=line)
    return value


def _short(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def order_by_score(scores: Mapping[str, float]) -> list[str]:
    """Doc ids in trec_eval order: score descending, ties by doc id descending."""
    # Sorting by doc id descending first, then a stable sort by score descending, gives the
    # trec_eval order for ties. NaN scores sink to the bottom so one bad score cannot reorder
    # the rest silently.
    ids = sorted(scores, reverse=True)
    return sorted(ids, key=lambda d: _sort_key(scores[d]))


def _sort_key(score: float) -> float:
    return math.inf if math.isnan(score) else -score


@dataclass
class Run:
    """Ranked doc ids per query, plus the raw scores that produced the order."""

    name: str
    ranking: dict[str, list[str]] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def from_scores(cls, name: str, scores: Mapping[str, Mapping[str, float]]) -> Run:
        ranking = {q: order_by_score(s) for q, s in scores.items()}
        return cls(name=name, ranking=ranking, scores={q: dict(s) for q, s in scores.items()})

    def rerank_at_depth(self, model_scores: Mapping[str, Mapping[str, float]], depth: int,
                        name: str) -> Run:
        """This run's top-``depth`` reordered by ``model_scores`` (see :func:`rerank_at_depth`)."""
        return rerank_at_depth(self.ranking, model_scores, depth, name)

    def drop_self_matches(self) -> Run:
        """BEIR's convention (optional): without candidates whose doc id equals the query id."""
        ranking = {q: [d for d in docs if d != q] for q, docs in self.ranking.items()}
        scores = {q: {d: s for d, s in self.scores[q].items() if d != q} for q in self.scores}
        return Run(self.name, ranking, scores)

    def top(self, depth: int) -> Run:
        """The first ``depth`` documents of every query."""
        ranking = {q: docs[:depth] for q, docs in self.ranking.items()}
        scores = {q: {d: self.scores[q][d] for d in docs} for q, docs in ranking.items()}
        return Run(self.name, ranking, scores)

    def num_pairs(self) -> int:
        return sum(len(d) for d in self.ranking.values())


def write_trec_run(run: Run, path: str | Path, tag: str | None = None) -> Path:
    """Write ``run`` as a six-column TREC run with strictly decreasing rank-derived scores."""
    path = Path(path)
    tag = (tag or run.name).replace(" ", "_")
    with atomic_open(path) as f:
        for qid in sorted(run.ranking):
            docs = run.ranking[qid]
            n = len(docs)
            for rank, doc_id in enumerate(docs, start=1):
                f.write(f"{qid} Q0 {doc_id} {rank} {n - rank + 1} {tag}\n")
    return path


def read_trec_run(path: str | Path, name: str | None = None) -> Run:
    """Read a TREC run file (``qid Q0 docid rank score tag``); errors name file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError("run file not found", path=path)
    scores: dict[str, dict[str, float]] = {}
    for line_no, line in _lines(path):
        parts = line.split()
        if len(parts) != 6:
            raise InputError(
                f"expected 6 columns 'qid Q0 docid rank score tag', found {len(parts)}",
                path=path,
                line=line_no,
            )
        qid, _, doc_id, rank, score, _ = parts
        check_id(qid, "query", path, line_no)
        check_id(doc_id, "document", path, line_no)
        try:
            if not RANK.fullmatch(rank) or not NUMBER.fullmatch(score):
                raise ValueError
            value = float(score)
        except ValueError:
            raise InputError(
                f"rank must be an integer and score a number, got {rank!r} and {score!r}",
                path=path,
                line=line_no,
            ) from None
        if math.isnan(value):
            raise InputError(f"score is NaN for doc {doc_id!r}", path=path, line=line_no)
        per_query = scores.setdefault(qid, {})
        if doc_id in per_query:
            raise InputError(
                f"doc {doc_id!r} appears twice for query {qid!r}", path=path, line=line_no
            )
        per_query[doc_id] = value
    return Run.from_scores(name or path.stem, scores)


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    """Non-blank lines with 1-based numbers; undecodable bytes are an error naming the line."""
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"not valid UTF-8 ({e.reason})", path=path, line=line_no) from None
            if line.strip():
                yield line_no, line.rstrip("\r\n")


def rerank_at_depth(
    first_stage: Mapping[str, Sequence[str]],
    model_scores: Mapping[str, Mapping[str, float]],
    depth: int,
    name: str,
) -> Run:
    """Top-``depth`` reordered by the model (ties by doc id descending); below it, the first
    stage's order continues, so metrics cut deeper than ``depth`` still see the shortlist."""
    ranking: dict[str, list[str]] = {}
    scores: dict[str, dict[str, float]] = {}
    for q, docs in first_stage.items():
        head = docs[:depth]
        q_scores = model_scores.get(q, {})
        head_scores = {d: q_scores[d] for d in head}
        ranking[q] = order_by_score(head_scores) + list(docs[depth:])
        scores[q] = head_scores
    return Run(name=name, ranking=ranking, scores=scores)


MODEL_SCORES_HEADER = "query_id\tdoc_id\tscore"


def read_model_scores(path: str | Path) -> dict[str, dict[str, float]]:
    """The raw model scores a run saved (``<reranker>.scores.tsv``: a header, then
    ``query_id<TAB>doc_id<TAB>score``): query id -> doc id -> score. Errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise InputError("model scores file not found", path=path)
    scores: dict[str, dict[str, float]] = {}
    for line_no, line in _lines(path):
        if line_no == 1:
            if line != MODEL_SCORES_HEADER:
                raise InputError("expected the header 'query_id<TAB>doc_id<TAB>score'",
                                 path=path, line=1)
            continue
        parts = line.split("\t")
        if len(parts) != 3 or not NUMBER.fullmatch(parts[2]):
            raise InputError("expected 'query_id<TAB>doc_id<TAB>score' with a numeric score",
                             path=path, line=line_no)
        qid, doc_id, value = parts[0], parts[1], float(parts[2])
        if not math.isfinite(value):
            raise InputError(f"score is {value} for doc {doc_id!r}", path=path, line=line_no)
        per_query = scores.setdefault(qid, {})
        if doc_id in per_query:
            raise InputError(f"doc {doc_id!r} appears twice for query {qid!r}", path=path,
                             line=line_no)
        per_query[doc_id] = value
    return scores
