"""An ``optional: true`` reranker whose model cannot be had is skipped with one log line and
recorded in results.json (the quickstart's hub cross-encoder, offline); hosted rerankers score
the (billed) sanity probes only when ``sanity: true`` opts them in."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from fake_rerank_server import FakeRerankServer
from huggingface_hub import constants
from rerank_eval.config import load_config, parse_config
from rerank_eval.runner import run_experiment
from rerank_eval.runner.run import _build_rerankers

ROOT = Path(__file__).resolve().parents[1]
HUB_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"
KEY = "sk-test-optional-sanity-0c1d"


def _config(tmp_path: Path, rerankers: list[dict], **extra: object):
    raw = {"name": "opt", "dataset": {"bundled": "quickstart"},
           "first_stage": {"bm25": {}, "depth": 5}, "rerankers": rerankers, "depths": [5],
           "metrics": ["ndcg@10", "mrr@10"], "latency": {"queries": 0}, **extra}
    return parse_config(raw, base_dir=tmp_path)


def test_an_unreachable_optional_reranker_is_skipped_and_recorded(tmp_path, caplog,
                                                                  tiny_cross_encoder,
                                                                  monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub model is neither cached nor fetched
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    config = _config(tmp_path, [
        {"name": "msmarco", "kind": "cross-encoder", "model": HUB_MODEL, "optional": True},
        {"name": "tiny", "kind": "cross-encoder", "model": str(tiny_cross_encoder),
         "max_length": 64}], sanity_check=False)
    caplog.set_level(logging.INFO, logger="rerank_eval")
    run_experiment(config, out_dir=tmp_path / "out")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["name"] for r in results["rerankers"]] == ["tiny"]
    assert results["status"] == "complete" and results["missing"] == []
    (skipped,) = results["skipped"]
    assert (skipped["name"], skipped["kind"], skipped["model"]) == ("msmarco", "cross-encoder",
                                                                    HUB_MODEL)
    assert "HF_HUB_OFFLINE is set" in skipped["reason"] and f"hf download {HUB_MODEL}" in \
        skipped["reason"]
    lines = [r.getMessage() for r in caplog.records if "msmarco" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("msmarco: skipped (optional: true): ")
    assert results["config"]["rerankers"][0]["optional"] is True


def test_the_optional_check_costs_the_offline_quickstart_under_a_second(tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    config = load_config(ROOT / "configs" / "quickstart.yaml")
    optional = [r for r in config.rerankers if r.optional]
    assert [r.params.model for r in optional] == [HUB_MODEL]
    only = config.model_copy(update={"rerankers": optional})
    t0 = time.perf_counter()
    built, skipped = _build_rerankers(only)
    assert time.perf_counter() - t0 < 1.0
    assert built == [] and [s.name for s in skipped] == [optional[0].name]


def test_a_required_reranker_that_cannot_be_had_still_fails(tmp_path, monkeypatch):
    from rerank_eval.errors import InputError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    config = _config(tmp_path, [{"name": "msmarco", "kind": "cross-encoder",
                                 "model": HUB_MODEL}])
    with pytest.raises(InputError, match=r"rerankers\[msmarco\]\.model: .*HF_HUB_OFFLINE"):
        _build_rerankers(config)


@pytest.mark.parametrize("sanity, probes", [(None, 0), (True, 12)])
def test_hosted_sanity_probes_are_opt_in_because_they_are_billed(tmp_path, monkeypatch,
                                                                  sanity, probes):
    monkeypatch.setenv("COHERE_API_KEY", KEY)
    server = FakeRerankServer(KEY)
    try:
        entry = {"name": "api", "kind": "cohere", "base_url": server.base_url("cohere")}
        if sanity is not None:
            entry["sanity"] = sanity
        run_experiment(_config(tmp_path, [entry]), out_dir=tmp_path / "out")
    finally:
        server.close()
    (result,) = json.loads((tmp_path / "out" / "results.json").read_text())["rerankers"]
    assert result["usage"]["documents"] == result["pairs_scored"] + probes
    assert ("sanity" in result) == (probes > 0)
