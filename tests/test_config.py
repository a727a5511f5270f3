"""Config is validated once, at the edge: unknown keys and bad values name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from rerank_eval.config import load_config, parse_config
from rerank_eval.errors import InputError

BASE = {"name": "x", "dataset": {"beir": "data"}, "first_stage": {"bm25": {}, "depth": 100}}


def _parse(**overrides):
    return parse_config({**BASE, **overrides}, base_dir=Path("/tmp"))


def test_defaults_are_filled_in():
    config = _parse()
    assert config.depths == [100] and config.relevance_threshold == 1
    assert [m.name for m in config.metrics] == ["ndcg@10", "mrr@10", "recall@100", "map@100"]


@pytest.mark.parametrize("overrides, message", [
    ({"metrcs": ["ndcg@10"]}, "config: unknown key 'metrcs'"),
    ({"depths": [10, 200]}, "depths: 200 exceeds first_stage.depth 100"),
    ({"metrics": ["ndcg@ten"]}, "metrics[0]: unknown metric 'ndcg@ten'"),
    ({"dataset": {"beir": "a", "irds": "b"}}, "dataset: give exactly one of"),
    ({"dataset": {"beir": "a", "sample": {"queries": 0}}},
     "dataset.sample.queries: must be a positive integer, got 0"),
    ({"rerankers": [{"name": "a", "kind": "cross-encoder"}, {"name": "a", "kind": "x"}]},
     "rerankers[1].name: duplicate name 'a'"),
    ({"relevance_threshold": "two"}, "relevance_threshold: expected an integer"),
])
def test_bad_values_name_the_field(overrides, message):
    with pytest.raises(InputError) as err:
        _parse(**overrides)
    assert message in str(err.value)


def test_yaml_syntax_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndataset: {beir: data\nfirst_stage: {bm25: {}}\n")
    with pytest.raises(InputError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}:")


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    path = tmp_path / "sub" / "c.yaml"
    path.parent.mkdir()
    path.write_text("name: x\ndataset: {beir: data}\nfirst_stage: {bm25: {}, depth: 10}\n")
    assert load_config(path).base_dir == path.parent.resolve()


# --- typed config: did-you-mean, lines, duplicate keys, dtype/device, JSON Schema ----------

ROOT = Path(__file__).resolve().parents[1]
HEAD = "name: x\ndataset: {bundled: quickstart}\nfirst_stage: {bm25: {}, depth: 20}\n"


def _load_error(tmp_path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}")
    return message[len(str(path)):]


@pytest.mark.parametrize("overrides, message", [
    ({"deptsh": [10]}, "config: unknown key 'deptsh' (did you mean 'depths'?)"),
    ({"latency": {"querys": 5}}, "latency: unknown key 'querys' (did you mean 'queries'?)"),
    ({"rerankers": [{"name": "a", "kind": "cross-encoder", "model": "m", "batchsize": 8}]},
     "rerankers[0]: unknown key 'batchsize' (did you mean 'batch_size'?)"),
    ({"zzz": 1}, "config: unknown key 'zzz' (allowed: audit, cache, dataset, depths,"),
])
def test_unknown_keys_suggest_the_closest_known_one(overrides, message):
    with pytest.raises(InputError) as err:
        _parse(**overrides)
    assert str(err.value).startswith(message)


def test_a_duplicate_yaml_key_is_refused_naming_its_line(tmp_path):
    message = _load_error(tmp_path, HEAD + "depths: [5]\nmetrics: [ndcg@10]\ndepths: [10]\n")
    assert message == ":6: invalid YAML: duplicate key 'depths' (first on line 4)"
    nested = _load_error(tmp_path, HEAD + "latency:\n  queries: 3\n  queries: 4\n")
    assert nested.startswith(":6: invalid YAML: duplicate key 'queries' (first on line 5)")


def test_a_yaml_merge_key_may_be_overridden(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(HEAD + "rerankers:\n  - &bi {name: a, kind: bi-encoder, "
                    "model: packaged:all-minilm-l6-v2}\n  - {<<: *bi, name: b}\n")
    assert [r.name for r in load_config(path).rerankers] == ["a", "b"]


def test_a_nested_field_error_names_its_file_line_and_path(tmp_path):
    message = _load_error(tmp_path, HEAD + (
        "rerankers:\n"
        "  - {name: a, kind: bi-encoder, model: m}\n"
        "  - name: b\n"
        "    kind: cross-encoder\n"
        "    model: m\n"
        "    batch_size: 0\n"))
    assert message == ":9: rerankers[1].batch_size: must be a positive integer, got 0"
    assert _load_error(tmp_path, HEAD + "executor:\n  ray:\n    workers: two\n") == (
        ":6: executor.ray.workers: expected an integer, got 'two'")
    assert _load_error(tmp_path, HEAD + "depths: [5, 50]\n") == (
        ":4: depths: 50 exceeds first_stage.depth 20")
    assert _load_error(tmp_path, HEAD + "\n\nlatncy: {queries: 3}\n") == (
        ":6: config: unknown key 'latncy' (did you mean 'latency'?)")


@pytest.mark.parametrize("entry, message", [
    ("dtype: fp8", "rerankers[0].dtype: expected auto, float32, bfloat16, float16, int8"),
    ("device: gpu", "rerankers[0].device: expected auto, cpu, cuda or cuda:N, got 'gpu'"),
    ("compile: 1", "rerankers[0].compile: expected auto, true or false, got 1"),
    ("kind: crossencoder", "rerankers[0].kind: unknown kind 'crossencoder' (did you mean "
                            "'cross-encoder'?)"),
])
def test_bad_reranker_settings_fail_at_load_time_naming_the_field(tmp_path, entry, message):
    fields = {"name": "ce", "kind": "cross-encoder", "model": "packaged:all-minilm-l6-v2"}
    key, value = entry.split(": ")
    fields[key] = value
    text = HEAD + "rerankers:\n  - {" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}\n"
    assert _load_error(tmp_path, text).startswith(f":5: {message}")


def test_valid_dtypes_and_devices_are_accepted():
    for dtype in ("auto", "float32", "bfloat16", "float16", "int8", "fp32", "bf16", "fp16"):
        for device in ("auto", "cpu", "cuda", "cuda:1"):
            entry = {"name": "ce", "kind": "cross-encoder", "model": "m", "dtype": dtype,
                     "device": device}
            params = _parse(rerankers=[entry]).rerankers[0].params
            assert (params.dtype, params.device) == (dtype, device)


def test_rerankers_get_their_typed_params():
    from rerank_eval.rerankers import build_reranker
    from rerank_eval.rerankers.cross_encoder import CrossEncoder, CrossEncoderParams

    config = _parse(rerankers=[{"name": "ce", "kind": "cross-encoder",
                                "model": "packaged:all-minilm-l6-v2", "batch_size": 8}])
    entry = config.rerankers[0]
    assert type(entry.params) is CrossEncoderParams  # the kind's model, without name/kind
    assert (entry.params.batch_size, entry.params.max_length) == (8, 512)
    reranker = build_reranker(entry.name, entry.kind, entry.params, base_dir=Path("/tmp"))
    assert isinstance(reranker, CrossEncoder) and reranker.params is entry.params
    # A mapping (the Python API) is validated into the same model.
    mapped = build_reranker("ce", "cross-encoder", {"model": "packaged:all-minilm-l6-v2",
                                                    "batch_size": 8}, base_dir=Path("/tmp"))
    assert mapped.params == entry.params
    # The resolved config still records the entry as written.
    assert config.resolved()["rerankers"] == [
        {"name": "ce", "kind": "cross-encoder", "model": "packaged:all-minilm-l6-v2",
         "batch_size": 8}]


def test_first_stages_get_their_typed_params(tmp_path):
    from rerank_eval.first_stage import FIRST_STAGES, Hybrid
    from rerank_eval.first_stage.bm25 import BM25Params
    from rerank_eval.first_stage.run_file import RunFileParams

    config = _parse(first_stage={"hybrid": {"of": [{"bm25": {"k1": 1.2}}, {"run": "a.trec"}]},
                                 "depth": 100})
    fs = config.first_stage
    stage = FIRST_STAGES[fs.kind](fs.params, base_dir=tmp_path)
    assert isinstance(stage, Hybrid)
    bm25, run = stage.components
    assert isinstance(bm25.params, BM25Params) and bm25.params.k1 == 1.2
    assert isinstance(run.params, RunFileParams) and run.path == tmp_path / "a.trec"
    assert config.resolved()["first_stage"]["hybrid"]["of"] == [{"bm25": {"k1": 1.2}},
                                                                {"run": "a.trec"}]


def test_schema_command_prints_the_json_schema_every_example_config_satisfies(capsys):
    import json

    jsonschema = pytest.importorskip("jsonschema")
    import yaml
    from rerank_eval.cli import main

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        if "rules" in raw:  # a gate rules file (configs/gate-rules.yaml), not a config
            continue
        assert not list(validator.iter_errors(raw)), path
        assert load_config(path).name == path.stem, path
    for bad in ("deptsh: [5]\n", "rerankers: [{name: a, kind: nope}]\n",
                "rerankers: [{name: a, kind: bi-encoder, model: m, dtype: fp64}]\n"):
        assert not validator.is_valid(yaml.safe_load(HEAD + bad)), bad
