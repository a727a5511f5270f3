"""The one runner: validation before work, finally-closing, the Python API."""

from __future__ import annotations

import json
import time

import pytest
import rerank_eval
from rerank_eval.config import parse_config
from rerank_eval.errors import InputError
from rerank_eval.runner import run as run_mod


def _raw(model, *, second: dict | None = None, name: str = "runner") -> dict:
    rerankers = [{"name": "tiny", "kind": "cross-encoder", "model": str(model),
                  "max_length": 64}]
    if second is not None:
        rerankers.append(second)
    return {"name": name, "dataset": {"bundled": "quickstart"},
            "first_stage": {"bm25": {}, "depth": 5}, "depths": [5],
            "metrics": ["ndcg@10"], "rerankers": rerankers, "sanity_check": False,
            "latency": {"queries": 0}, "cache": {"enabled": False}}


def test_an_unreachable_hub_id_fails_before_any_work(tmp_path, tiny_cross_encoder,
                                                      monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    raw = _raw(tiny_cross_encoder, second={"name": "hub", "kind": "cross-encoder",
                                           "model": "no-such-org/no-such-reranker"})
    config = parse_config(raw, base_dir=tmp_path)
    started = time.perf_counter()
    with pytest.raises(InputError) as err:
        rerank_eval.run_experiment(config, out_dir=str(tmp_path / "out"))
    assert time.perf_counter() - started < 10
    message = str(err.value)
    assert message.startswith("rerankers[hub].model:") and "hf download" in message
    assert "HF_HUB_OFFLINE" in message and "\n" not in message
    assert not (tmp_path / "out").exists()  # nothing loaded, retrieved or scored


def test_executor_cache_and_models_are_closed_when_a_reranker_fails(
        tmp_path, tiny_cross_encoder, monkeypatch):
    closed: list[str] = []
    real_make = run_mod.make_executor

    def spy_executor(*args, **kwargs):
        executor = real_make(*args, **kwargs)
        close = executor.close
        executor.close = lambda: (closed.append("executor"), close())[1]
        return executor

    monkeypatch.setattr(run_mod, "make_executor", spy_executor)
    raw = _raw(tiny_cross_encoder, second={"name": "broken", "kind": "cross-encoder",
                                           "model": str(tiny_cross_encoder)})
    raw["cache"] = {"enabled": True, "path": str(tmp_path / "scores.sqlite")}
    config = parse_config(raw, base_dir=tmp_path)
    from rerank_eval.rerankers.cross_encoder import CrossEncoder

    real_score = CrossEncoder.score

    def score(self, pairs):
        if self.name == "broken":
            raise RuntimeError("the second model breaks mid-run")
        return real_score(self, pairs)

    monkeypatch.setattr(CrossEncoder, "score", score)
    real_close = CrossEncoder.close
    monkeypatch.setattr(CrossEncoder, "close",
                        lambda self: (closed.append(self.name), real_close(self))[1])
    with pytest.raises(RuntimeError, match="breaks mid-run"):
        rerank_eval.run_experiment(config, out_dir=tmp_path / "out")
    assert "executor" in closed and {"tiny", "broken"} <= set(closed)
    results = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert [r["name"] for r in results["rerankers"]] == ["tiny"]  # finished work kept


def test_python_api_accepts_str_paths_and_refuses_the_wrong_config_kind(
        tmp_path, tiny_cross_encoder):
    config = parse_config(_raw(tiny_cross_encoder), base_dir=tmp_path)
    result = rerank_eval.run_experiment(config, out_dir=str(tmp_path / "out"))
    assert result.reports_dir == tmp_path / "out"
    assert (tmp_path / "out" / "results.json").is_file()
    assert set(result.rerankers[0].evaluations) == {5}
    with pytest.raises(TypeError, match="use run_experiment"):
        rerank_eval.run_sweep(config)
    assert rerank_eval.load_config is not None and rerank_eval.__version__
