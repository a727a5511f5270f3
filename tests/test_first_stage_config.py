"""Dense and hybrid first-stage configs: bad values fail at parse time, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from rerank_eval.config import parse_config
from rerank_eval.errors import InputError

MINILM = {"dense": {"model": "packaged:all-minilm-l6-v2"}}


def parse(first_stage: dict):
    raw = {"name": "t", "dataset": {"bundled": "quickstart"}, "first_stage": first_stage}
    return parse_config(raw, base_dir=Path("/tmp"))


def test_dense_and_hybrid_configs_parse() -> None:
    cfg = parse({**MINILM, "depth": 50})
    assert (cfg.first_stage.kind, cfg.first_stage.depth) == ("dense", 50)
    cfg = parse({"hybrid": {"of": [{"bm25": {}}, MINILM], "method": "rrf",
                            "params": {"k": 60}}, "depth": 100})
    assert cfg.first_stage.kind == "hybrid"


@pytest.mark.parametrize("first_stage,message", [
    ({"dense": {}}, "first_stage.dense.model: required"),
    ({"dense": {"model": "packaged:all-minilm-l6-v2", "batchsize": 8}},
     "first_stage.dense: unknown key 'batchsize'"),
    ({"dense": {"model": "packaged:all-minilm-l6-v2", "batch_size": 0}},
     "first_stage.dense.batch_size: must be a positive integer, got 0"),
    ({"dense": {"model": "packaged:all-minilm-l6-v2", "normalize": "yes"}},
     "first_stage.dense.normalize: expected true or false"),
    ({"dense": {"model": "./no/such/model"}}, "first_stage.dense.model: model path not found"),
    ({"dense": "packaged:all-minilm-l6-v2"}, "first_stage.dense: expected a mapping"),
    ({"hybrid": {"of": [{"bm25": {}}]}}, "first_stage.hybrid.of: expected a list of at least two"),
    ({"hybrid": {"of": [{"bm25": {}}, {"sparse": {}}]}},
     "first_stage.hybrid.of[1]: unknown first stage 'sparse'"),
    ({"hybrid": {"of": [{"bm25": {}}, {"dense": {"model": "./missing"}}]}},
     "first_stage.hybrid.of[1].dense.model: model path not found"),
    ({"hybrid": {"of": [{"bm25": {"k": 1}}, MINILM]}},
     "first_stage.hybrid.of[0].bm25: unknown key 'k'"),
    ({"hybrid": {"of": [{"bm25": {}}, MINILM], "method": "fancy"}},
     "first_stage.hybrid.method: unknown fusion method 'fancy'"),
    ({"hybrid": {"of": [{"bm25": {}}, MINILM], "method": "probfuse"}},
     "first_stage.hybrid.method: 'probfuse' must be trained on qrels first"),
    ({"hybrid": {"of": [{"bm25": {}}, MINILM], "method": "rrf", "params": {"kk": 1}}},
     "first_stage.hybrid.params: unknown key 'kk' for method 'rrf' (allowed: k)"),
    ({"hybrid": {"of": [{"bm25": {}}, MINILM], "method": "wsum"}},
     "first_stage.hybrid.params: method 'wsum' needs 'weights'"),
    ({"hybrid": {"of": [{"bm25": {}}, MINILM], "method": "wsum",
                 "params": {"weights": [1.0]}}},
     "first_stage.hybrid.params.weights: expected 2 numbers"),
    ({"hybrid": {"of": [{"bm25": {}}, MINILM], "norm": "l2"}},
     "first_stage.hybrid.norm: unknown normalisation 'l2'"),
    ({"hybrid": {"of": [{"bm25": {}}, MINILM], "component_depth": 0}},
     "first_stage.hybrid.component_depth: must be a positive integer, got 0"),
])
def test_bad_first_stage_values_name_the_field(first_stage, message) -> None:
    with pytest.raises(InputError) as err:
        parse({**first_stage, "depth": 10})
    assert message in str(err.value)
