"""The conventions two results must share before their numbers are compared.

Two results.json files can only be compared (``rerank-eval compare``) or gated
(``rerank-eval gate``) when their numbers mean the same thing: the same collection, the same
query sample, the same relevance threshold, first stage, reranking depths and tie order. A
difference is refused with one line naming it (exit 2) unless the user allows that field
(``--allow-mismatch FIELD``); what was allowed is recorded in the output.

A field one side does not record (an older results.json) is not compared: there is nothing to
compare it with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rerank_eval.compare.options import CONVENTION_FIELDS
from rerank_eval.errors import InputError
from rerank_eval.results import Results

#: Every field checked, in the order a difference is reported.
FIELDS = CONVENTION_FIELDS

# Dataset.sample_queries appends this to the dataset id.
_SAMPLE_SUFFIX = re.compile(r"\[sample=(\d+),seed=(-?\d+)\]$")


@dataclass(frozen=True)
class Mismatch:
    """One convention on which two results differ, as the two sides write it."""

    field: str
    baseline: str
    candidate: str

    def describe(self, labels: tuple[str, str] = ("baseline", "candidate")) -> str:
        return f"{labels[0]} and {labels[1]} differ in {self.field}: {self.baseline} vs " \
               f"{self.candidate}"


def conventions_of(results: Results) -> dict[str, str | None]:
    """Each field of :data:`FIELDS` as a short text (None: not recorded in this file), and
    ``first_stage_brief`` (name and depth: compared when one side lacks the section).

    The first stage is its config section as written (kind, parameters, depth), not its
    description, which holds machine-specific paths. The query sample is the config's
    ``dataset.sample`` (else the dataset id's suffix).
    """
    config = results.config
    dataset_id = results.dataset.id
    sample = None
    if dataset_id is not None:
        match = _SAMPLE_SUFFIX.search(dataset_id)
        if match:
            sample = f"{match.group(1)} queries, seed {match.group(2)}"
            dataset_id = dataset_id[: match.start()]
        else:
            sample = "all judged queries"
    written = (config.dataset or {}).get("sample") if config.dataset is not None else None
    if isinstance(written, dict) and {"queries", "seed"} <= set(written):
        sample = f"{written['queries']} queries, seed {written['seed']}"
    threshold = config.relevance_threshold
    if threshold is None:
        threshold = results.conventions.relevance_threshold
    fs = results.first_stage
    brief = f"{fs.name} top-{fs.depth}"
    first_stage = (json.dumps(config.first_stage, sort_keys=True, default=str)
                   if config.first_stage else None)
    depths = config.depths or sorted({d for r in results.rerankers for d in r.depths()})
    return {
        "dataset": dataset_id,
        "query_sample": sample,
        "relevance_threshold": None if threshold is None else str(threshold),
        "first_stage": first_stage,
        "first_stage_brief": brief,  # what an older file records: compared when one side is
        "depths": str(sorted(depths)) if depths else None,
        "tie_order": results.conventions.tie_order,
    }


def differences(baseline: Results | Mapping[str, str | None],
                candidate: Results | Mapping[str, str | None]) -> list[Mismatch]:
    """The fields both record and that differ, in :data:`FIELDS` order (each side a results
    file or its :func:`conventions_of`)."""
    a = conventions_of(baseline) if isinstance(baseline, Results) else baseline
    b = conventions_of(candidate) if isinstance(candidate, Results) else candidate
    found = []
    for f in FIELDS:
        key = f
        if f == "first_stage" and (a.get(f) is None or b.get(f) is None):
            key = "first_stage_brief"
        if a.get(key) is not None and b.get(key) is not None and a[key] != b[key]:
            found.append(Mismatch(f, str(a[key]), str(b[key])))
    return found


def check_allow_list(allow: Iterable[str]) -> list[str]:
    """The ``--allow-mismatch`` values, each a known field (else InputError)."""
    allowed = list(dict.fromkeys(allow))
    for name in allowed:
        if name not in FIELDS:
            raise InputError(f"--allow-mismatch: unknown field {name!r} "
                             f"(one of {', '.join(FIELDS)})")
    return allowed


def check_conventions(baseline: Results | Mapping[str, str | None],
                      candidate: Results | Mapping[str, str | None], allow: Sequence[str] = (),
                      *,
                      labels: tuple[str, str] = ("baseline", "candidate")) -> list[Mismatch]:
    """Refuse (InputError, one line) the first difference not in ``allow``; return the
    allowed ones, to be recorded in the output."""
    allowed = check_allow_list(allow)
    found = differences(baseline, candidate)
    for m in found:
        if m.field not in allowed:
            raise InputError(f"{m.describe(labels)} (pass --allow-mismatch {m.field} to "
                             "compare them anyway)")
    return found


def allowed_lines(mismatches: Sequence[Mismatch],
                  labels: tuple[str, str] = ("baseline", "candidate")) -> list[str]:
    """One line per allowed difference, for summaries and reports."""
    return [f"allowed mismatch: {m.describe(labels)}" for m in mismatches]
