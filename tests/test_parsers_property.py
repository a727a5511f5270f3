"""Every input parser, fed arbitrary input, either reads it exactly or raises an InputError
that names the file (and the line, for line-level problems): never a traceback, never a
silently different number."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rerank_eval.config import TOP_LEVEL_KEYS, ExperimentConfig, load_config, parse_config
from rerank_eval.datasets.base import join_title_text
from rerank_eval.datasets.formats import (
    read_beir_corpus,
    read_beir_queries,
    read_qrels,
    read_tsv_pairs,
)
from rerank_eval.errors import InputError
from rerank_eval.runs import order_by_score, read_trec_run

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

READERS = {
    "qrels": read_qrels,
    "trec_run": read_trec_run,
    "beir_corpus": read_beir_corpus,
    "beir_queries": read_beir_queries,
    "tsv_pairs": lambda p: read_tsv_pairs(p, "doc"),
    "config": load_config,
}

# Lines built from the pieces these formats are made of, so examples reach deep into the
# parsers rather than failing on the first byte.
TOKENS = st.sampled_from(["q1", "d1", "Q0", "0", "1", "2", "-1", "1.5", "2.0", "1e400", "nan",
                          "inf", "1_0", "\u0661", "query-id", "{", "}", "[", "\"_id\"", ":",
                          "\"text\"", "\"x\"", "null", "true", "name:", "dataset:", "- ", "\t",
                          " ", "\u00c3\u00a9", "\x00", "\\", "\""])
LINES = st.lists(st.one_of(st.lists(TOKENS, max_size=8).map(" ".join),
                           st.lists(TOKENS, max_size=8).map("\t".join), st.text(max_size=40)),
                 max_size=8).map("\n".join)


def _check(reader, path: Path) -> object:
    try:
        return reader(path)
    except InputError as e:
        assert e.path == str(path), e
        assert str(e).startswith(str(path)) and "\n" not in str(e)
        return e


@pytest.mark.parametrize("fmt", sorted(READERS))
@SETTINGS
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_are_read_or_rejected_with_the_file_named(tmp_path, fmt, data):
    path = tmp_path / f"input.{fmt}"
    path.write_bytes(data)
    _check(READERS[fmt], path)


@pytest.mark.parametrize("fmt", sorted(READERS))
@SETTINGS
@given(text=LINES)
def test_arbitrary_lines_are_read_or_rejected_with_the_file_named(tmp_path, fmt, text):
    path = tmp_path / f"input.{fmt}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _check(READERS[fmt], path)


def test_line_level_errors_name_the_line(tmp_path):
    cases = {
        "qrels": "q1\td1\t1\nq1\td2\tx\n",
        "trec_run": "q1 Q0 d1 1 2.0 t\nq1 Q0 d2 1 1_0 t\n",
        "beir_corpus": '{"_id": "d1", "text": "a"}\n{"_id": 1.5}\n',
        "beir_queries": '{"_id": "q1", "text": "a"}\n[1]\n',
        "tsv_pairs": "d1\ta\nd2 b\n",
    }
    for fmt, text in cases.items():
        path = tmp_path / fmt
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InputError) as err:
            READERS[fmt](path)
        assert err.value.line == 2, fmt
        assert str(err.value).startswith(f"{path}:2: "), fmt


# --- valid input reads back exactly ------------------------------------------------------

IDS = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")),
              min_size=1, max_size=12).filter(
    lambda s: s.strip() == s and s.lower() not in {"query-id", "query_id", "qid"}
    and not any(c in s for c in "\x1c\x1d\x1e\x1f\x85"))


@SETTINGS
@given(qrels=st.dictionaries(IDS, st.dictionaries(IDS, st.integers(-3, 1000), min_size=1),
                             min_size=1),
       trec=st.booleans())
def test_qrels_read_back_exactly(tmp_path, qrels, trec):
    path = tmp_path / "qrels.txt"
    lines = [] if trec else ["query-id\tcorpus-id\tscore"]
    for q, judged in qrels.items():
        for d, rel in judged.items():
            lines.append(f"{q} 0 {d} {rel}" if trec else f"{q}\t{d}\t{rel}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert read_qrels(path) == qrels


SCORES = st.floats(allow_nan=False, width=64)


@SETTINGS
@given(run=st.dictionaries(IDS, st.dictionaries(IDS, SCORES, min_size=1), min_size=1))
def test_trec_runs_read_back_exactly(tmp_path, run):
    path = tmp_path / "run.trec"
    with open(path, "w", encoding="utf-8") as f:
        for q, scores in run.items():
            for rank, d in enumerate(order_by_score(scores), start=1):
                f.write(f"{q} Q0 {d} {rank} {scores[d]!r} tag\n")
    read = read_trec_run(path)
    assert read.scores == run
    assert read.ranking == {q: order_by_score(s) for q, s in run.items()}


@SETTINGS
@given(docs=st.dictionaries(IDS, st.tuples(st.text(max_size=30), st.text(max_size=60)),
                            min_size=1))
def test_beir_corpus_reads_back_exactly(tmp_path, docs):
    path = tmp_path / "corpus.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for d, (title, text) in docs.items():
            f.write(json.dumps({"_id": d, "title": title, "text": text}) + "\n")
    assert read_beir_corpus(path) == {d: join_title_text(t, x) for d, (t, x) in docs.items()}


# --- the config: any YAML structure is accepted or rejected naming a field -------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["bm25", "beir", "ndcg@10", "x@y"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(st.sampled_from(["bm25", "run", "depth", "beir", "name", "kind",
                                               "enabled", "path", "sample", "queries"]),
                              st.text(max_size=6), st.integers()), inner, max_size=4)),
    max_leaves=12)


@SETTINGS
@given(raw=st.one_of(VALUES, st.dictionaries(
    st.one_of(st.sampled_from(sorted(TOP_LEVEL_KEYS)), st.text(max_size=8)), VALUES,
    max_size=9)))
def test_any_config_structure_is_parsed_or_rejected_with_an_input_error(tmp_path, raw):
    try:
        config = parse_config(raw, base_dir=tmp_path)
    except InputError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(config, ExperimentConfig)
    assert all(isinstance(d, int) and d >= 1 for d in config.depths)


def test_config_value_errors_from_yaml_are_input_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ndataset: {beir: 2001-13-01}\n", encoding="utf-8")
    with pytest.raises(InputError, match="invalid YAML value"):
        load_config(path)


def _understood(outcome: object) -> str:
    """A config as understood (its resolved form), or the error it was refused with."""
    if isinstance(outcome, InputError):
        return f"error: {outcome}"
    return json.dumps(outcome.resolved(), sort_keys=True, default=str)  # type: ignore[attr-defined]


@SETTINGS
@given(raw=st.dictionaries(st.sampled_from(sorted(TOP_LEVEL_KEYS)), VALUES, max_size=9))
def test_configs_survive_a_yaml_round_trip(tmp_path, raw):
    """Written to YAML and loaded, a config is understood as the same mapping given to
    parse_config is: the same resolved config, or the same error (plus the file and line)."""
    path = tmp_path / "c.yaml"
    try:
        path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False),
                        encoding="utf-8")
    except (UnicodeEncodeError, yaml.YAMLError):
        return  # not representable as a UTF-8 YAML file
    if any(isinstance(v, float) and math.isnan(v) for v in raw.values()):
        return
    from_file = _check(load_config, path)
    try:
        direct: object = parse_config(raw, base_dir=tmp_path.resolve(), source_path=path)
    except InputError as e:
        direct = e
    if isinstance(direct, InputError):
        assert isinstance(from_file, InputError), _understood(from_file)
        assert str(from_file).endswith(str(direct)), (str(from_file), str(direct))
    else:
        assert _understood(from_file) == _understood(direct)


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")
                                         if not p.name.startswith("gate-rules")))
def test_the_shipped_configs_survive_a_yaml_round_trip(name):
    """The accepted configs (the property test above mostly meets refused ones): dumped to
    YAML and read back, each is understood exactly as before."""
    path = CONFIGS / name
    config = load_config(path)
    text = yaml.safe_dump(config.raw, allow_unicode=True, sort_keys=False)
    again = parse_config(yaml.safe_load(text), base_dir=path.resolve().parent,
                         source_path=path)
    assert _understood(again) == _understood(config)
    assert config.resolved()["name"] == config.raw["name"]
