"""Self-hosted rerank servers (TEI, Infinity, vLLM) against a loopback server speaking each
real schema; the give-up message and the retry wait left out of throughput."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from fake_rerank_server import PAIRS, SCHEMAS, FakeRerankServer, overlap_score
from rerank_eval.errors import InputError
from rerank_eval.rerankers import RERANKERS, build_reranker
from rerank_eval.rerankers.hosted import HostedAPIError
from rerank_eval.rerankers.hosted.base import union_seconds
from rerank_eval.scoring.latency import throughput

KEY = "sk-selfhosted-NEVER-SHOWN-424242"
MOUNT = {"tei": "tei", "infinity": "infinity", "vllm": "vllm"}
RAW = np.array([overlap_score(q, d) for q, d in PAIRS])


@pytest.fixture
def server():
    srv = FakeRerankServer(KEY, doc_cap=3)
    srv.clients = []
    yield srv
    for client in srv.clients:
        client.close()
    srv.close()


def make(server: FakeRerankServer, kind: str, mount: str | None = None, **params):
    params = {"base_url": server.base_url(mount or kind), "max_docs_per_request": 3,
              "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5, **params}
    reranker = build_reranker(f"{kind}-test", kind, params, base_dir=Path.cwd())
    server.clients.append(reranker)
    return reranker


def test_the_three_server_kinds_are_registered():
    assert {"tei", "infinity", "vllm"} <= set(RERANKERS)


@pytest.mark.parametrize("kind, mount, transform", [
    ("tei", "tei", "identity"), ("infinity", "infinity", "identity"),
    ("vllm", "vllm", "sigmoid"),
])
def test_each_kind_speaks_its_servers_schema(server, kind, mount, transform):
    extra = {"endpoint": "rerank"} if kind == "vllm" else {}
    rr = make(server, kind, mount, **extra)
    scores = rr.score(PAIRS)
    # TEI and Infinity are asked for raw scores; vLLM's come back through its sigmoid
    expected = RAW if transform == "identity" else 1 / (1 + np.exp(-RAW))
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)
    assert rr.score_transform == transform and rr.describe()["score_transform"] == transform
    path, docs_field, _, required, optional = SCHEMAS[mount]
    assert sorted(len(r["body"][docs_field]) for r in server.requests) == [2, 3, 3]
    for r in server.requests:
        assert r["path"] == path
        assert set(r["body"]) >= required and set(r["body"]) <= required | optional
        assert "Authorization" not in r["headers"]  # no api_key_env: no key sent
        if kind in {"tei", "infinity"}:
            assert r["body"]["raw_scores"] is True


def test_vllm_score_endpoint_sends_text_pairs(server):
    rr = make(server, "vllm", "vllm-score", endpoint="score", model="my-ce", concurrency=1,
              truncate_prompt_tokens=128)
    np.testing.assert_allclose(rr.score(PAIRS), 1 / (1 + np.exp(-RAW)), atol=1e-12)
    body = server.requests[0]["body"]
    assert server.requests[0]["path"] == "/score"
    assert body["text_1"] == PAIRS[0][0] and body["text_2"] == [d for _, d in PAIRS[:3]]
    assert body["model"] == "my-ce" and body["truncate_prompt_tokens"] == 128
    assert rr.model_id == "my-ce"
    assert rr.stats.extra["usage"]["total_tokens"] > 0


def test_infinity_usage_is_recorded_as_characters_with_its_unit(server):
    rr = make(server, "infinity")
    rr.score(PAIRS)
    usage = rr.stats.extra["usage"]
    assert usage["characters"] == sum(len(q) + len(d) for q, d in PAIRS)
    assert "total_tokens" not in usage and "characters" in usage["unit"]
    assert rr.stats.extra["cost_usd"] is None


def test_tei_reports_no_usage_and_says_so(server):
    rr = make(server, "tei")
    rr.score(PAIRS)
    usage = rr.stats.extra["usage"]
    assert usage["requests_without_usage"] == usage["requests"] == 3
    assert "no usage" in usage["unit"]


def test_a_configured_key_is_sent_and_a_wrong_one_fails_fast(server, monkeypatch):
    monkeypatch.setenv("TEI_KEY", KEY)
    rr = make(server, "tei", api_key_env="TEI_KEY")
    np.testing.assert_array_equal(rr.score(PAIRS[:2]), RAW[:2])
    assert server.requests[-1]["headers"]["Authorization"] == f"Bearer {KEY}"
    monkeypatch.setenv("TEI_KEY", "wrong-key-123")
    wrong = make(server, "tei", api_key_env="TEI_KEY")
    with pytest.raises(HostedAPIError, match="HTTP 401") as err:
        wrong.score(PAIRS[:2])
    assert "wrong-key-123" not in str(err.value)


@pytest.mark.parametrize("params, message", [
    ({"base_url": None}, "base_url: required"),
    ({"price": {"per_1m_tokens": 1.0}}, "self-hosted and not billed"),
    ({"base_url": "http://10.1.2.3:8080", "api_key_env": "X"}, "plain http would send"),
    ({"endpoint": "embed"}, "endpoint"),
])
def test_bad_server_config_is_one_line(server, params, message):
    raw = {"max_docs_per_request": 3, "base_url": server.base_url("vllm"), **params}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(InputError, match=message) as err:
        build_reranker("v", "vllm", raw, base_dir=Path.cwd())
    assert "\n" not in str(err.value)


def test_plain_http_to_a_lan_server_is_fine_without_a_key():
    rr = build_reranker("t", "tei", {"base_url": "http://10.1.2.3:8080"}, base_dir=Path.cwd())
    assert rr.endpoint == "http://10.1.2.3:8080/rerank"
    rr.close()


def test_giving_up_says_for_how_long_and_which_setting_to_raise(server):
    server.outage(60)
    rr = make(server, "infinity", concurrency=1, max_retries=3, backoff_base_s=0.1,
              backoff_max_s=0.1)
    t0 = time.monotonic()
    with pytest.raises(HostedAPIError) as err:
        rr.score(PAIRS[:3])
    took = time.monotonic() - t0
    message = str(err.value)
    assert "gave up after 4 attempts over" in message
    spent = float(message.split(" over ")[1].split(" s")[0])
    assert 0.15 <= spent <= took + 0.05  # three backoffs of 0.05-0.1 s, at most the wall time
    assert "raise max_retries, now 3, or backoff_max_s, now 0.1 s" in message
    assert "\n" not in message


def test_the_default_retry_budget_rides_out_a_short_restart(server):
    server.outage(0.6)
    # the defaults' schedule (max_retries 7, doubling backoff) scaled down 10x
    rr = make(server, "tei", concurrency=2, backoff_base_s=0.1, backoff_max_s=6.0)
    assert rr.max_retries == 7
    np.testing.assert_array_equal(rr.score(PAIRS), RAW)
    waited = rr.stats.retry_wait_s
    assert 0.5 <= waited  # the outage, counted once though two workers waited it out
    assert rr.stats.extra["usage"]["retry_reasons"]["connection error"] >= 2


def test_overlapping_waits_count_once():
    assert union_seconds([]) == 0
    assert union_seconds([(0, 2), (1, 3), (5, 6)]) == pytest.approx(4)
    assert union_seconds([(0, 10), (2, 3)]) == pytest.approx(10)


def test_throughput_leaves_out_the_time_spent_waiting():
    t = throughput(1000, 10, 30.0, {}, 2, retry_wait_s=20.0)
    assert t["pairs_per_s"] == pytest.approx(100.0) and t["queries_per_s"] == pytest.approx(1)
    assert t["seconds"] == 30.0 and t["retry_wait_s"] == 20.0
    assert "retry_wait_s" not in throughput(1000, 10, 30.0, {}, 2)


# -- a server restarting in the middle of a run -------------------------------------------------

def _run_config(server: FakeRerankServer, **params) -> dict:
    return {"name": "restart", "dataset": {"bundled": "quickstart"},
            "first_stage": {"bm25": {}, "depth": 20}, "depths": [20], "metrics": ["ndcg@10"],
            "sanity_check": False, "latency": {"queries": 0},
            "rerankers": [{"name": "inf", "kind": "infinity", "model": "ce",
                           "base_url": server.base_url("infinity"), "max_docs_per_request": 20,
                           "concurrency": 2, **params}]}


def test_a_run_rides_out_a_restart_and_throughput_leaves_the_outage_out(tmp_path, server):
    from rerank_eval.config import parse_config
    from rerank_eval.results import read_results
    from rerank_eval.runner import run_experiment

    server.doc_cap = 1000
    server.outage_after(5, 0.8)
    # the defaults' schedule (max_retries 7, doubling backoff) scaled down 10x
    config = parse_config(_run_config(server, backoff_base_s=0.1, backoff_max_s=6.0),
                          base_dir=tmp_path)
    run_experiment(config, out_dir=tmp_path / "out")
    entry = read_results(tmp_path / "out").reranker("inf")
    t = entry.throughput
    answered = sum(len(r["body"]["documents"]) for r in server.requests if r["body"])
    assert entry.pairs_scored == entry.usage.documents == answered
    assert entry.usage.retries >= 1
    assert t.retry_wait_s is not None and 0.7 <= t.retry_wait_s < t.seconds
    assert t.pairs_per_s == pytest.approx(t.pairs / (t.seconds - t.retry_wait_s))
    assert entry.score_transform == "identity" and entry.model == "ce"


def test_a_run_that_gives_up_says_so_and_a_rerun_scores_only_what_is_missing(tmp_path, server,
                                                                             capsys):
    import yaml
    from rerank_eval.cli import main
    from rerank_eval.results import read_results

    server.doc_cap = 1000
    server.outage_after(6, 1.0)
    raw = _run_config(server, max_retries=1, backoff_base_s=0.05, backoff_max_s=0.05,
                      concurrency=1)
    path = tmp_path / "restart.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "gave up after 2 attempts over" in err and "raise max_retries, now 1" in err
    answered = sum(len(r["body"]["documents"]) for r in server.requests[:6])
    time.sleep(1.0)  # the server is back
    before = len(server.requests)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    resent = sum(len(r["body"]["documents"]) for r in server.requests[before:])
    entry = read_results(tmp_path / "out").reranker("inf")
    assert entry.pairs_from_cache == answered  # the answered requests were kept
    assert resent == entry.pairs_scored  # only the rest reached the server
