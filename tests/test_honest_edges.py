"""Issue #18, "honest edges": every input the harness cannot represent faithfully is refused at
the edge with one line naming the file, line and field, never a traceback, never a silently
different number; every output file goes through the one atomic writer."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rerank_eval.cli import main
from rerank_eval.config import load_config, parse_config
from rerank_eval.datasets import load_dataset
from rerank_eval.datasets.formats import (
    read_beir_corpus,
    read_beir_queries,
    read_qrels,
    read_tsv_pairs,
)
from rerank_eval.errors import InputError
from rerank_eval.files import atomic_write_text
from rerank_eval.runs import Run, read_trec_run, write_trec_run

LIBRARY = Path(__file__).resolve().parents[1] / "eval" / "rerank_eval"

BASE = {"dataset": {"bundled": "quickstart"}, "first_stage": {"bm25": None, "depth": 10},
        "sanity_check": False}


def _one_line(e: InputError | pytest.ExceptionInfo) -> str:
    text = str(e.value if isinstance(e, pytest.ExceptionInfo) else e)
    assert "\n" not in text and "Traceback" not in text
    return text


def _cli_error(capsys, argv: list[str]) -> str:
    """Run the CLI, expect exit 2 and exactly one error line on stderr; return it."""
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("rerank-eval: error: "), err
    return err[0]


# ---------------------------------------------------------------- 1. names are path components
UNSAFE_NAMES = ["..", ".", ".hidden", "a\nb", "a\fb", "a\x00b", "a/b", "a\\b", "a b", "a:b",
                "caf\u00e9", "-x", "a\x7fb", "x" * 101]


@pytest.mark.parametrize("bad", UNSAFE_NAMES)
def test_unsafe_experiment_and_reranker_names_are_refused_naming_the_field(bad):
    with pytest.raises(InputError) as e:
        parse_config({**BASE, "name": bad}, base_dir=Path.cwd())
    assert _one_line(e).startswith("name: expected a name of letters, digits, '.', '_', '-'")
    entry = {"name": bad, "kind": "cross-encoder", "model": "packaged:all-minilm-l6-v2"}
    with pytest.raises(InputError) as e:
        parse_config({**BASE, "name": "ok", "rerankers": [entry]}, base_dir=Path.cwd())
    assert _one_line(e).startswith("rerankers[0].name: expected a name of letters")
    sweep = {**BASE, "name": "ok", "datasets": [{"bundled": "quickstart", "name": bad}]}
    del sweep["dataset"]
    with pytest.raises(InputError) as e:
        parse_config(sweep, base_dir=Path.cwd())
    assert _one_line(e).startswith("datasets[0].name: expected a name of letters")


@pytest.mark.parametrize("good", ["scifact-ce", "minilm_l6.v2", "A1", "_x", "a..b", "x" * 100])
def test_safe_names_are_accepted(good):
    assert parse_config({**BASE, "name": good}, base_dir=Path.cwd()).name == good


@pytest.mark.parametrize("yaml_name", ['".."', '"a\\nb"', '"a\\fb"', '"a\\0b"'])
def test_run_with_an_unsafe_name_exits_2_and_writes_nothing(tmp_path, monkeypatch, capsys,
                                                           yaml_name):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(f"name: {yaml_name}\ndataset: {{bundled: quickstart}}\n"
                      "first_stage: {bm25: {}, depth: 5}\nsanity_check: false\n")
    line = _cli_error(capsys, ["run", str(config), "--quiet"])
    assert f"{config}:1: name: expected a name of letters" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_a_sweep_dataset_name_from_its_folder_is_made_safe(tmp_path):
    folder = tmp_path / "my data (v2)"
    folder.mkdir()
    sweep = {**BASE, "name": "s", "datasets": [{"beir": str(folder)}, {"beir": str(tmp_path)
                                                                         + "/.."}],
             "rerankers": [{"name": "ce", "kind": "cross-encoder",
                            "model": "packaged:all-minilm-l6-v2"}]}
    del sweep["dataset"]
    with pytest.raises(InputError) as e:
        parse_config(sweep, base_dir=tmp_path)
    # '..' as a folder name gives no usable name: refused, naming the dataset.
    assert _one_line(e).startswith("datasets[1].name: ")
    sweep["datasets"] = sweep["datasets"][:1]
    config = parse_config(sweep, base_dir=tmp_path)
    assert config.datasets[0].name == "my-data-v2"


# ---------------------------------------------------------------- 2. ids that break TREC lines
BAD_IDS = ["d 1", "d\t1", "d\n1", "d\r1", "d\x001", "d\x0b1", "d\u20281", "d\u00a01"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_ids_with_whitespace_or_control_characters_are_refused_at_load(tmp_path, bad):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"_id": "ok", "text": "x"}) + "\n"
                      + json.dumps({"_id": bad, "text": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        read_beir_corpus(corpus)
    assert _one_line(e).startswith(f"{corpus}:2: document id ")
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"_id": bad, "text": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        read_beir_queries(queries)
    assert _one_line(e).startswith(f"{queries}:1: query id ")


@pytest.mark.parametrize("bad", ["d 1", "d\x001", "d\x0b1", "d\u00a01"])
def test_qrels_and_tsv_ids_with_whitespace_are_refused(tmp_path, bad):
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text(f"query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\t{bad}\t1\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        read_qrels(qrels)
    assert _one_line(e).startswith(f"{qrels}:3: document id ")
    tsv = tmp_path / "collection.tsv"
    tsv.write_text(f"d0\ttext\n{bad}\ttext\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        read_tsv_pairs(tsv, "doc")
    assert _one_line(e).startswith(f"{tsv}:2: doc id ")


@pytest.mark.parametrize("bad", ["d\x001", "d\x7f1", "d\u200b1".replace("\u200b", "\x05")])
def test_run_file_ids_with_control_characters_are_refused(tmp_path, bad):
    run = tmp_path / "first.trec"
    run.write_text(f"q1 Q0 d0 1 2 bm25\nq1 Q0 {bad} 2 1 bm25\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        read_trec_run(run)
    assert _one_line(e).startswith(f"{run}:2: document id ")


def test_every_id_read_writes_one_trec_line_each(tmp_path):
    """What the readers accept, write_trec_run writes as exactly one six-column line."""
    corpus = tmp_path / "corpus.jsonl"
    ids = ["d-1", "d_2", "d.3", "D\u00e94", "5"]
    corpus.write_text("".join(json.dumps({"_id": i, "text": "x"}) + "\n" for i in ids),
                      encoding="utf-8")
    read = list(read_beir_corpus(corpus))
    assert read == ids
    path = write_trec_run(Run.from_scores("r", {"q1": {d: 1.0 for d in read}}),
                          tmp_path / "r.trec")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(ids) and all(len(line.split()) == 6 for line in lines)


# ---------------------------------------------------------------- 3. one qrels format per file
def test_a_three_column_line_in_a_trec_qrels_file_is_an_error_not_a_beir_line(tmp_path):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("1 0 d1 1\n1 0 d2 0\n2 0 7\n2 0 d3 2\n")
    with pytest.raises(InputError) as e:
        read_qrels(qrels)
    text = _one_line(e)
    assert text.startswith(f"{qrels}:3: ") and "4 columns" in text and "found 3" in text


def test_a_four_column_line_in_a_beir_qrels_file_is_an_error(tmp_path):
    qrels = tmp_path / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\t0\td2\t1\n")
    with pytest.raises(InputError) as e:
        read_qrels(qrels)
    text = _one_line(e)
    assert text.startswith(f"{qrels}:3: ") and "3 columns" in text and "found 4" in text
    # Without a header, the first data line decides as well.
    qrels.write_text("q1\td1\t1\nq1\t0\td2\t1\n")
    with pytest.raises(InputError, match=r":2: .*3 columns"):
        read_qrels(qrels)


def test_consistent_qrels_files_of_either_format_read_the_same(tmp_path):
    trec = tmp_path / "qrels.txt"
    trec.write_text("q1 0 d1 1\nq1 0 d2 0\nq2 Q0 d3 2\n")
    beir = tmp_path / "test.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td3\t2\n")
    expected = {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}
    assert read_qrels(trec) == read_qrels(beir) == expected


# ---------------------------------------------------------------- 5. one-line errors
def _beir(folder: Path, corpus: list[dict]) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "cats"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("q1\td1\t1\n")
    return folder


def test_an_empty_corpus_is_one_line_naming_the_file(tmp_path, capsys):
    folder = _beir(tmp_path / "data", [])
    with pytest.raises(InputError) as e:
        load_dataset("beir", str(folder))
    assert _one_line(e) == f"{folder / 'corpus.jsonl'}: no documents found"
    config = tmp_path / "c.yaml"
    config.write_text(f"name: e\ndataset: {{beir: {folder}}}\nfirst_stage: {{bm25: {{}}}}\n"
                      "sanity_check: false\n")
    _cli_error(capsys, ["run", str(config), "--out", str(tmp_path / "out"), "--quiet"])


def test_a_corpus_without_indexable_words_is_one_line(tmp_path, capsys):
    folder = _beir(tmp_path / "data", [{"_id": "d1", "text": ""}, {"_id": "d2", "text": "the"}])
    config = tmp_path / "c.yaml"
    config.write_text(f"name: e\ndataset: {{beir: {folder}}}\nfirst_stage: {{bm25: {{}}}}\n"
                      "sanity_check: false\n")
    line = _cli_error(capsys, ["run", str(config), "--out", str(tmp_path / "out"), "--quiet"])
    assert "bm25" in line and "no indexable words" in line


@pytest.mark.parametrize(("params", "message"), [
    ({"k1": "high"}, "first_stage.bm25.k1: expected a number, got 'high'"),
    ({"k1": -0.1}, "first_stage.bm25.k1: must be >= 0, got -0.1"),
    ({"b": 7}, "first_stage.bm25.b: must be <= 1, got 7"),
    ({"b": -0.5}, "first_stage.bm25.b: must be >= 0, got -0.5"),
])
def test_bm25_parameters_out_of_range_are_refused(params, message):
    with pytest.raises(InputError) as e:
        parse_config({**BASE, "name": "e", "first_stage": {"bm25": params}},
                     base_dir=Path.cwd())
    assert _one_line(e) == message


def test_a_corrupted_safetensors_file_is_one_line_naming_the_field(tmp_path, scifact_ce):
    from rerank_eval.rerankers import build_reranker

    broken = tmp_path / "broken-model"
    broken.mkdir()
    for f in scifact_ce.iterdir():
        if f.name != "model.safetensors":
            (broken / f.name).write_bytes(f.read_bytes())
    weights = scifact_ce / "model.safetensors"
    with open(weights, "rb") as f:  # a download cut off half way
        (broken / weights.name).write_bytes(f.read(weights.stat().st_size // 2))
    reranker = build_reranker("ce", "cross-encoder", {"model": str(broken)}, base_dir=tmp_path)
    with pytest.raises(InputError) as e:
        reranker.score([("q", "p")])
    text = _one_line(e)
    assert text.startswith("rerankers[ce].model: cannot load the model") and str(broken) in text


def test_a_sweep_without_rerankers_is_refused(tmp_path, capsys):
    config = tmp_path / "s.yaml"
    config.write_text("name: s\ndatasets: [{bundled: quickstart}]\n"
                      "first_stage: {bm25: {}, depth: 5}\nrerankers: []\n")
    line = _cli_error(capsys, ["run", str(config), "--out", str(tmp_path / "out")])
    assert f"{config}:4: rerankers: a sweep needs at least one reranker" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("dtype", "float8", "rerankers[0].dtype: expected auto, float32, bfloat16, float16, int8"),
    ("device", "tpu", "rerankers[0].device: expected auto, cpu, cuda or cuda:N, got 'tpu'"),
])
def test_dtype_and_device_are_checked_at_config_load(tmp_path, key, value, needle):
    """Already done before #18 (verified): the message names the field and lists int8."""
    config = tmp_path / "c.yaml"
    config.write_text("name: e\ndataset: {bundled: quickstart}\nfirst_stage: {bm25: {}}\n"
                      "rerankers:\n  - {name: a, kind: cross-encoder, "
                      f"model: packaged:all-minilm-l6-v2, {key}: {value}}}\n")
    with pytest.raises(InputError) as e:
        load_config(config)
    assert _one_line(e).startswith(f"{config}:5: {needle}")


def test_duplicate_yaml_keys_are_refused(tmp_path):
    """Already done before #18 (verified)."""
    config = tmp_path / "c.yaml"
    config.write_text("name: e\ndataset: {bundled: quickstart}\nname: f\n")
    with pytest.raises(InputError) as e:
        load_config(config)
    assert _one_line(e) == f"{config}:3: invalid YAML: duplicate key 'name' (first on line 1)"


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_gate_max_drop_must_be_a_finite_non_negative_number(tmp_path, capsys, value):
    """Already done before #18 (verified); the results files are never read."""
    line = _cli_error(capsys, ["gate", "--baseline", str(tmp_path), "--candidate",
                               str(tmp_path), "--metric", "ndcg@10", "--max-drop", value])
    assert "--max-drop: " in line


# ---------------------------------------------------------------- 6. the one atomic writer
WRITER = """
import sys
from rerank_eval.files import atomic_write_text
path, writer, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(rounds):
    atomic_write_text(path, f"writer {writer} round {i}\\n" * 2000)
"""


def test_concurrent_writers_of_one_file_never_share_a_temp_file(tmp_path):
    """Threads and processes write one target at once: the target is always one writer's
    whole file and no temp file is left (two runs into one folder used to share one
    ``*.trec.tmp`` name)."""
    target = tmp_path / "out" / "first_stage.trec"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(target), f"p{w}", "20"])
             for w in range(2)]

    def write(w: int) -> None:  # until both processes are done, so that all overlap
        i = 0
        while i < 20 or any(p.poll() is None for p in procs):
            atomic_write_text(target, f"writer t{w} round {i}\n" * 2000)
            i += 1

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    text = target.read_text()
    first = text.splitlines()[0]
    assert text == f"{first}\n" * 2000  # one writer's whole file, never a mix or a torn file
    assert sorted(p.name for p in target.parent.iterdir()) == ["first_stage.trec"]


def test_two_runs_writing_trec_files_into_one_folder_at_once(tmp_path):
    runs = [Run.from_scores(f"r{w}", {f"q{i}": {f"d{j}": float(j + w) for j in range(50)}
                                      for i in range(40)}) for w in range(4)]
    errors: list[BaseException] = []

    def write(run: Run) -> None:
        try:
            for _ in range(10):
                write_trec_run(run, tmp_path / "first_stage.trec")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    written = read_trec_run(tmp_path / "first_stage.trec")
    assert written.ranking in [r.ranking for r in runs]
    assert [p.name for p in tmp_path.iterdir()] == ["first_stage.trec"]


def _write_calls(tree: ast.AST) -> list[str]:
    """Calls that write a file other than through rerank_eval.files."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name == "open" and isinstance(func, ast.Name):
            mode = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "mode"), None)
            if not (isinstance(mode, ast.Constant) and set(str(mode.value)) <= set("rbt")) \
                    and mode is not None:
                found.append(f"line {node.lineno}: open(..., {ast.unparse(mode)})")
        elif name in ("write_text", "write_bytes", "save", "savez", "to_parquet", "dump"):
            found.append(f"line {node.lineno}: {ast.unparse(func)}(...)")
        elif name in ("to_csv", "to_json", "savefig") and node.args and not (
                isinstance(node.args[0], ast.Name) and node.args[0].id in ("png", "buf")):
            found.append(f"line {node.lineno}: {ast.unparse(func)}({ast.unparse(node.args[0])})")
    return found


def test_every_output_file_goes_through_the_atomic_writer():
    offenders = {}
    for path in sorted(LIBRARY.rglob("*.py")):
        if path.name == "files.py" and path.parent == LIBRARY:
            continue
        calls = _write_calls(ast.parse(path.read_text(encoding="utf-8")))
        if calls:
            offenders[str(path.relative_to(LIBRARY))] = calls
    assert not offenders, offenders
