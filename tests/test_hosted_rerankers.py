"""Hosted rerank APIs (Cohere, Jina, Voyage, Mixedbread) against a real HTTP server on loopback.

The server speaks each provider's schema and can be told to misbehave; every scenario must end
with the right scores or a clear error naming the provider and the request.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from fake_rerank_server import PAIRS, SCHEMAS, FakeRerankServer, overlap_score
from rerank_eval.errors import InputError
from rerank_eval.rerankers import RERANKERS, build_reranker
from rerank_eval.rerankers.hosted import HostedAPIError
from rerank_eval.rerankers.hosted.ratelimit import RateLimiter
from rerank_eval.rerankers.hosted.transport import parse_retry_after

KEY = "sk-test-5ecret-DO-NOT-LEAK-0123456789"
KINDS = ["cohere", "jina", "voyage", "mixedbread"]
ENV = {"cohere": "COHERE_API_KEY", "jina": "JINA_API_KEY", "voyage": "VOYAGE_API_KEY",
       "mixedbread": "MXBAI_API_KEY"}

EXPECTED = np.array([overlap_score(q, d) for q, d in PAIRS])


@pytest.fixture
def server(monkeypatch):
    for env in ENV.values():
        monkeypatch.setenv(env, KEY)
    srv = FakeRerankServer(KEY, doc_cap=3, hang_s=1.0)
    srv.clients = []
    yield srv
    for client in srv.clients:
        client.close()
    srv.close()


def make(server: FakeRerankServer, kind: str = "cohere", **params):
    params = {"base_url": server.base_url(kind), "max_docs_per_request": 3,
              "backoff_base_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5, **params}
    reranker = build_reranker(f"{kind}-test", kind, params, base_dir=Path.cwd())
    server.clients.append(reranker)
    return reranker


def sends_of_first_chunk(server: FakeRerankServer, kind: str) -> int:
    """How often the first request (query 1, candidates 0-2) reached the server; the second
    request may or may not have started before the first failed."""
    first = [d for _, d in PAIRS[:3]]
    return sum(r["body"][SCHEMAS[kind][1]] == first for r in server.requests)


def test_all_four_providers_are_registered_kinds():
    assert set(KINDS) <= set(RERANKERS)


@pytest.mark.parametrize("kind", KINDS)
def test_scores_every_candidate_in_input_order_within_the_document_cap(server, kind):
    rr = make(server, kind)
    scores = rr.score(PAIRS)
    np.testing.assert_array_equal(scores, EXPECTED)
    path, docs_field, top_field, _, _ = SCHEMAS[kind]
    # 5 candidates -> 3 + 2, and 3 candidates -> 3: three requests, none over the cap
    assert sorted(len(r["body"][docs_field]) for r in server.requests) == [2, 3, 3]
    for r in server.requests:
        assert r["path"] == path
        assert r["headers"]["Authorization"] == f"Bearer {KEY}"
        assert r["body"][top_field] == len(r["body"][docs_field])  # all scores, not a top few
        assert r["body"]["model"] == rr.params.model
    assert rr.stats.pairs_scored == len(PAIRS)
    usage = rr.stats.extra["usage"]
    assert usage["requests"] == 3 and usage["documents"] == len(PAIRS)
    assert usage["queries_split"] == 1
    billed = "search_units" if kind == "cohere" else "total_tokens"
    assert usage[billed] > 0
    assert len(rr.stats.extra["request_latency_ms"]) == 3
    assert rr.stats.extra["request_latency_summary_ms"]["p95"] > 0


def test_chunking_does_not_change_the_scores(server):
    server.doc_cap = 1000
    one_request = make(server, max_docs_per_request=1000).score(PAIRS)
    chunked = make(server, max_docs_per_request=1).score(PAIRS)
    np.testing.assert_array_equal(one_request, chunked)


def test_429_waits_for_retry_after_then_succeeds(server):
    server.fail_next("429")
    rr = make(server, concurrency=1)
    t0 = time.perf_counter()
    np.testing.assert_array_equal(rr.score(PAIRS), EXPECTED)
    assert time.perf_counter() - t0 >= 1.0  # Retry-After: 1 honoured over a 0.05 s backoff
    assert rr.stats.extra["usage"]["retry_reasons"] == {"HTTP 429": 1}
    assert rr.stats.extra["usage"]["retries"] == 1


def test_5xx_are_retried_with_backoff(server):
    server.fail_next("500", "503")
    rr = make(server, concurrency=1)
    np.testing.assert_array_equal(rr.score(PAIRS), EXPECTED)
    assert rr.stats.extra["usage"]["retry_reasons"] == {"HTTP 500": 1, "HTTP 503": 1}
    assert len(server.requests) == 3 + 2


def test_a_timeout_is_retried(server):
    server.fail_next("timeout")
    rr = make(server, concurrency=1, timeout_s=0.3)
    np.testing.assert_array_equal(rr.score(PAIRS), EXPECTED)
    assert rr.stats.extra["usage"]["retry_reasons"] == {"timeout": 1}


@pytest.mark.parametrize("fault", ["truncated", "bad_json"])
def test_a_truncated_body_is_retried(server, fault):
    server.fail_next(fault)
    rr = make(server, concurrency=1)
    np.testing.assert_array_equal(rr.score(PAIRS), EXPECTED)
    assert rr.stats.extra["usage"]["retries"] == 1


def test_retries_are_bounded_and_the_error_says_why(server):
    server.fail_next(*["truncated"] * 3)
    rr = make(server, "voyage", concurrency=1, max_retries=2)
    with pytest.raises(HostedAPIError, match=r"Voyage reranker 'voyage-test', request #1 .*"
                                             r"gave up after 3 attempts over [0-9.]+ s; "
                                             r"last: truncated body.*"
                                             r"raise max_retries, now 2"):
        rr.score(PAIRS)
    assert sends_of_first_chunk(server, "voyage") == 3


@pytest.mark.parametrize("fault, message", [
    ("bad_index", r"index 8 is out of range for 3 documents"),
    ("duplicate", r"index \d appears more than once"),
    ("missing", r"1 of 3 documents have no score"),
    ("nan", r"relevance_score is nan, not a finite number"),
])
def test_a_malformed_answer_is_a_clear_error_not_a_silent_misranking(server, fault, message):
    server.fail_next(fault)
    rr = make(server, "jina", concurrency=1)
    with pytest.raises(HostedAPIError, match=rf"Jina reranker 'jina-test', request #1 "
                                             rf"\(query 'how many legs.*candidates 0-2 of 5\)"
                                             rf": malformed response: .*{message}"):
        rr.score(PAIRS)
    assert sends_of_first_chunk(server, "jina") == 1  # not retried: the answer came, it is wrong


def test_other_4xx_fail_fast_with_the_providers_message(server):
    server.fail_next("400")
    rr = make(server, "mixedbread", concurrency=1)
    with pytest.raises(HostedAPIError, match=r"Mixedbread .*HTTP 400 .*model 'nope' not found"):
        rr.score(PAIRS)
    assert sends_of_first_chunk(server, "mixedbread") == 1


def test_a_wrong_key_fails_fast_without_showing_any_key(server, monkeypatch):
    monkeypatch.setenv("COHERE_API_KEY", "sk-wrong-key-777")
    rr = make(server)
    with pytest.raises(HostedAPIError, match="HTTP 401.*invalid api token") as err:
        rr.score(PAIRS)
    assert "sk-wrong-key-777" not in str(err.value) and KEY not in str(err.value)


def test_a_provider_message_echoing_the_key_is_scrubbed(server):
    server.fail_next("echo_auth")
    rr = make(server, concurrency=1)
    with pytest.raises(HostedAPIError, match=r"bad request with Bearer \*\*\*") as err:
        rr.score(PAIRS)
    assert KEY not in str(err.value)


def test_the_concurrency_limit_holds(server):
    server.doc_cap = 1000
    server.delay_s = 0.15
    rr = make(server, max_docs_per_request=1, concurrency=2)
    np.testing.assert_array_equal(rr.score(PAIRS), EXPECTED)
    assert server.max_in_flight == 2  # parallel, but never more than configured


def test_usage_is_summed_and_priced(server):
    server.doc_cap = 1000
    cohere = make(server, max_docs_per_request=1, price={"per_1k_search_units": 2.0})
    cohere.score(PAIRS)
    assert cohere.stats.extra["usage"]["search_units"] == len(PAIRS)  # one unit per request
    assert cohere.stats.extra["cost_usd"] == pytest.approx(len(PAIRS) / 1000 * 2.0)
    voyage = make(server, "voyage", price={"per_1m_tokens": 0.05})
    voyage.score(PAIRS)
    from fake_rerank_server import n_tokens

    tokens = voyage.stats.extra["usage"]["total_tokens"]
    assert tokens == sum(n_tokens(q) + n_tokens(d) for q, d in PAIRS)  # the server's bill
    assert voyage.stats.extra["cost_usd"] == pytest.approx(tokens / 1e6 * 0.05)
    assert make(server, "jina").stats.extra == {}  # nothing published before scoring


def test_missing_key_is_an_input_error_naming_the_variable(server, monkeypatch):
    monkeypatch.delenv("JINA_API_KEY")
    with pytest.raises(InputError, match="environment variable JINA_API_KEY is not set"):
        make(server, "jina")
    monkeypatch.setenv("MY_JINA", KEY)
    assert make(server, "jina", api_key_env="MY_JINA").score(PAIRS[:1]).shape == (1,)


@pytest.mark.parametrize("params, message", [
    ({"max_docs_per_request": 5000}, "exceeds the Cohere limit of 1000"),
    ({"base_url": "http://api.example.com"}, "plain http would send the API key"),
    ({"base_url": "ftp://x"}, "expected http"),
    ({"price": {"per_1m_tokens": 1.0}}, "Cohere bills search_units"),
    ({"concurrency": 0}, "concurrency: must be a positive integer, got 0"),
    ({"api_key": KEY}, "unknown key 'api_key'"),
])
def test_bad_config_is_rejected_without_echoing_values(server, params, message):
    with pytest.raises(InputError, match=message) as err:
        make(server, **params)
    assert KEY not in str(err.value)


def test_key_is_not_in_describe_or_fingerprint(server):
    rr = make(server)
    assert KEY not in repr(rr.describe()) + repr(rr.fingerprint())
    assert "timeout_s" not in rr.fingerprint() and rr.fingerprint()["model"] == "rerank-v3.5"


def test_rate_limiter_spaces_requests_and_tokens():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(2, 100, window_s=60, clock=lambda: now[0], sleep=sleep)
    assert limiter.acquire(10) == 0 and limiter.acquire(10) == 0
    assert limiter.acquire(10) == pytest.approx(60)  # third request waits a full window
    now[0] = 200
    limiter = RateLimiter(None, 100, window_s=60, clock=lambda: now[0], sleep=sleep)
    assert limiter.acquire(80) == 0
    assert limiter.acquire(30) == pytest.approx(60)  # 80 + 30 > 100 tokens per window
    assert limiter.acquire(500) == pytest.approx(60)  # an oversized request goes alone


def test_retry_after_parses_seconds_and_dates():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_the_example_config_builds_every_hosted_reranker(server):
    from rerank_eval.config import load_config

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "hosted-apis.yaml")
    hosted = [r for r in config.rerankers if r.kind in KINDS]
    assert sorted(r.kind for r in hosted) == sorted(KINDS)
    for r in hosted:
        reranker = build_reranker(r.name, r.kind, r.params, base_dir=config.base_dir)
        assert reranker.endpoint.startswith("https://")
