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
    ({"metrics": ["ndcg@ten"]}, "metrics: unknown metric 'ndcg@ten'"),
    ({"dataset": {"beir": "a", "irds": "b"}}, "dataset: give exactly one of"),
    ({"dataset": {"beir": "a", "sample": {"queries": 0}}}, "dataset.sample.queries: must be >= 1"),
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
