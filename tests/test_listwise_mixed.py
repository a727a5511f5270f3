"""Acceptance: one config mixing a cross-encoder, a causal LM (``kind: causal-lm``), a
listwise reranker (loopback chat server) and a hosted kind runs end to end into one report,
and compare and gate read its results like any other system's."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from fake_chat_server import FakeChatServer
from fake_rerank_server import FakeRerankServer
from rerank_eval.cli import main
from synthetic import write_beir
from test_listwise import oracle, tiny_causal_lm  # noqa: F401 - a fixture, requested below

KEY = "sk-mixed-SECRET-9a8b7c"


def _run_mix(tmp_path: Path, first: list[dict], monkeypatch) -> list[str]:
    data = write_beir(tmp_path / "data", queries=8, docs=120, seed=4)
    monkeypatch.setenv("LW_KEY", KEY)
    monkeypatch.setenv("JINA_API_KEY", KEY)
    hosted = FakeRerankServer(KEY)
    try:
        with FakeChatServer(KEY, oracle(data)) as chat:
            rerankers = first + [
                {"name": "lw", "kind": "listwise", "model": "oracle", "base_url": chat.url,
                 "api_key_env": "LW_KEY", "price": {"per_1m_input_tokens": 1.0,
                                                    "per_1m_output_tokens": 2.0}},
                {"name": "jina", "kind": "jina", "base_url": hosted.base_url("jina"),
                 "price": {"per_1m_tokens": 0.02}}]
            config = {"name": "mixed",
                      "dataset": {"beir": str(data)},
                      "first_stage": {"bm25": {}, "depth": 20}, "rerankers": rerankers,
                      "depths": [10, 20], "metrics": ["ndcg@10"], "sanity_check": False}
            path = tmp_path / "mixed.yaml"
            path.write_text(yaml.safe_dump(config))
            assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    finally:
        hosted.close()
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    names = [r["name"] for r in results["rerankers"]]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "API cost and listwise answers" in report
    assert "| lw " in report and "| jina " in report  # both in the cost table
    out = tmp_path / "cmp.json"
    assert main(["compare", str(tmp_path / "out" / "results.json"), "--baseline", "ce",
                 "--format", "json", "--out", str(out)]) == 0
    compared = out.read_text()
    for name in names:
        assert f'"{name}' in compared
    assert main(["gate", "--baseline", str(tmp_path / "out"), "--candidate",
                 str(tmp_path / "out"), "--reranker", "lw", "--metric", "ndcg@10",
                 "--max-drop", "0.0"]) == 0
    return names


def test_cross_encoder_listwise_and_hosted_in_one_run(tmp_path, tiny_cross_encoder,
                                                      monkeypatch):
    first = [{"name": "ce", "kind": "cross-encoder", "model": str(tiny_cross_encoder),
              "max_length": 128}]
    assert _run_mix(tmp_path, first, monkeypatch) == ["ce", "lw", "jina"]


def test_with_a_causal_lm_too(tmp_path, tiny_cross_encoder, monkeypatch):
    from tiny_lm import build_causal_lm

    model = build_causal_lm(tmp_path / "clm")
    first = [{"name": "ce", "kind": "cross-encoder", "model": str(tiny_cross_encoder),
              "max_length": 128},
             {"name": "clm", "kind": "causal-lm", "model": str(model),
              "template": "qwen3-reranker", "max_length": 128}]
    assert _run_mix(tmp_path, first, monkeypatch) == ["ce", "clm", "lw", "jina"]
