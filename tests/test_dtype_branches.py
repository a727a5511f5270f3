"""``dtype: auto`` on a CPU: both branches (fp32, bf16 autocast) run on every machine.

Which branch a machine takes depends on its CPU (native bf16 or not); these tests force each
branch with RERANK_EVAL_NATIVE_BF16 (the ``native_bf16`` fixture) and check that auto then runs,
records and caches exactly what the explicit dtype does.
"""

from __future__ import annotations

import json

import torch
from rerank_eval.config import parse_config
from rerank_eval.models import resolve_dtype
from rerank_eval.runner import run_experiment


def _run(tmp_path, model, dtype: str, tag: str) -> dict:
    raw = {
        "name": f"dtype-{tag}",
        "dataset": {"bundled": "quickstart"},
        "first_stage": {"bm25": {}, "depth": 10},
        "rerankers": [{"name": "tiny", "kind": "cross-encoder", "model": str(model),
                       "max_length": 128, "dtype": dtype}],
        "depths": [10], "metrics": ["ndcg@10"], "sanity_check": False,
        "latency": {"queries": 0}, "cache": {"enabled": False},
    }
    out = tmp_path / tag
    run_experiment(parse_config(raw, base_dir=tmp_path), out_dir=out)
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    scores = (out / "runs" / "tiny.scores.tsv").read_text(encoding="utf-8")
    return {"entry": results["rerankers"][0], "scores": scores}


def test_auto_runs_exactly_the_forced_branch(native_bf16, tiny_cross_encoder, tmp_path):
    expected = torch.bfloat16 if native_bf16 == "1" else torch.float32
    assert resolve_dtype("auto", torch.device("cpu")) == expected
    name = str(expected).removeprefix("torch.")

    auto = _run(tmp_path, tiny_cross_encoder, "auto", "auto")
    explicit = _run(tmp_path, tiny_cross_encoder, name, "explicit")

    description = auto["entry"]["description"]
    assert auto["entry"]["throughput"]["dtype"] == name
    assert description["autocast"] is (native_bf16 == "1")
    assert description["scoring_path"].startswith(f"cpu/{name}")
    assert auto["scores"] == explicit["scores"]  # the same path, to the bit
    if native_bf16 == "1":  # and it really is another path than fp32
        assert auto["scores"] != _run(tmp_path, tiny_cross_encoder, "float32", "fp32")["scores"]
