"""Issue #18, the hosted-API edges: an API key never reaches a traceback or an error message
(whole or in part), ``timeout_s`` bounds the whole request, and every answer a provider billed
is kept in the score cache even when a later request of the same chunk fails."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from fake_rerank_server import FakeRerankServer
from rerank_eval.cli import main
from rerank_eval.errors import InputError
from rerank_eval.rerankers import build_reranker
from rerank_eval.rerankers.hosted import HostedAPIError
from rerank_eval.rerankers.hosted.response import provider_message, scrub_secret

KEY = "sk-edge-Q7w9Zr2LmXv8Tn4Kp1Ys6Hd3"
PAIRS = [("how many legs does a spider have", d)
         for d in ("Spiders have eight legs.", "Bananas are yellow.", "Insects have six legs.")]


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("COHERE_API_KEY", KEY)
    monkeypatch.setenv("JINA_API_KEY", KEY)
    srv = FakeRerankServer(KEY, retry_after="0")
    srv.clients = []
    yield srv
    for client in srv.clients:
        client.close()
    srv.close()


def make(server: FakeRerankServer, kind: str = "cohere", **params):
    params = {"base_url": server.base_url(kind), "backoff_base_s": 0.01,
              "backoff_max_s": 0.05, "timeout_s": 5, **params}
    reranker = build_reranker(f"{kind}-test", kind, params, base_dir=Path.cwd())
    server.clients.append(reranker)
    return reranker


def hosted_config(tmp_path: Path, server: FakeRerankServer, **params) -> Path:
    raw = {"name": "edges", "dataset": {"bundled": "quickstart"},
           "first_stage": {"bm25": {}, "depth": 20}, "depths": [10, 20],
           "metrics": ["ndcg@10"], "sanity_check": False,
           "rerankers": [{"name": "jina-api", "kind": "jina", "base_url": server.base_url("jina"),
                          "max_docs_per_request": 7, "backoff_base_s": 0.01,
                          "backoff_max_s": 0.05, **params}]}
    path = tmp_path / "edges.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


# --- 1. a key the HTTP client cannot send ------------------------------------------------------

@pytest.mark.parametrize("bad_key", [
    "sk-edge-Q7w9\nZr2LmXv8",  # a newline inside (strip() only removes the ends)
    "sk-edge-Q7w9\x1bZr2LmXv8",  # an escape (a NUL cannot be in os.environ)
    "sk-edge-Q7w9\x7fZr2LmXv8",
    "sk-edge-Q7w9\r\nX-Injected: 1",
])
def test_a_key_with_a_control_character_is_one_line_naming_only_the_variable(
        tmp_path, server, monkeypatch, capsys, bad_key):
    monkeypatch.setenv("JINA_API_KEY", bad_key)
    code = main(["run", str(hosted_config(tmp_path, server)), "--out", str(tmp_path / "out"),
                 "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "JINA_API_KEY" in err and "control character" in err
    assert "sk-edge" not in err and "Q7w9" not in err and "Zr2L" not in err
    assert server.requests == []  # refused before anything was sent


def test_a_key_with_a_non_latin1_character_is_one_line(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setenv("JINA_API_KEY", "sk-edge-Q7w9\u2019Zr2LmXv8")  # a pasted curly quote
    code = main(["run", str(hosted_config(tmp_path, server)), "--out", str(tmp_path / "out"),
                 "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "JINA_API_KEY" in err and "Latin-1" in err and "Q7w9" not in err


def test_a_key_read_from_a_file_with_its_trailing_newline_still_works(server, monkeypatch):
    monkeypatch.setenv("COHERE_API_KEY", KEY + "\n")
    assert make(server).score(PAIRS).shape == (3,)
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"


# --- 2. part of a key in a provider's error text ----------------------------------------------

@pytest.mark.parametrize("pad", [290, 295, 299, 280])
def test_a_key_echoed_across_the_300_character_cut_is_scrubbed(server, pad):
    server.echo_pad = pad  # the key starts `pad` characters in: the cut at 300 splits it
    server.fail_next("echo_key_401")
    with pytest.raises(HostedAPIError, match="HTTP 401") as err:
        make(server, concurrency=1).score(PAIRS)
    message = str(err.value)
    assert "\n" not in message
    assert not any(KEY[:n] in message for n in range(6, len(KEY) + 1))
    assert not any(KEY[-n:] in message for n in range(6, len(KEY) + 1))


def test_key_prefixes_and_suffixes_of_six_or_more_characters_are_scrubbed():
    raw = (b'{"message": "key ' + KEY[:9].encode() + b'... rejected; did you mean ...'
           + KEY[-7:].encode() + b'? short bits sk-ed and Hd3 stay"}')
    text = provider_message(raw, KEY)
    assert KEY[:9] not in text and KEY[:6] not in text and KEY[-7:] not in text
    assert "short bits sk-ed and Hd3 stay" in text  # under 6 characters: not the key's
    assert scrub_secret("abc", "") == "abc"


# --- 3. timeout_s is a deadline for the whole request ------------------------------------------

def test_timeout_s_bounds_the_whole_request_not_each_socket_read(server):
    server.drip_bytes, server.drip_s = 16, 0.25  # 4 s for the body, a byte every 0.25 s
    server.fail_next("drip")
    rr = make(server, concurrency=1, timeout_s=1, max_retries=0)
    t0 = time.perf_counter()
    with pytest.raises(HostedAPIError,
                       match=r"gave up after 1 attempts over [0-9.]+ s; last: timeout"):
        rr.score(PAIRS)
    assert time.perf_counter() - t0 < 2.5


def test_a_request_that_beat_its_deadline_reuses_nothing_broken(server):
    server.drip_bytes, server.drip_s = 4, 0.05  # 0.2 s: well inside the 2 s deadline
    server.fail_next("drip")
    rr = make(server, concurrency=1, timeout_s=2)
    first = rr.score(PAIRS)
    time.sleep(2.2)  # past the first request's deadline: its timer must not hit a reused socket
    assert (rr.score(PAIRS) == first).all()
    assert rr.stats.extra["usage"]["retries"] == 0


# --- 4. answered requests are kept when a later one fails --------------------------------------

def _rerank_docs(server: FakeRerankServer, queries: set[str]) -> list[tuple[str, str]]:
    """(query, document) pairs the server was asked to rerank for the dataset's queries."""
    return [(r["body"]["query"], d) for r in server.requests
            if r["body"]["query"] in queries for d in r["body"]["documents"]]


def test_answered_queries_are_cached_when_a_later_request_fails(tmp_path, server, capsys):
    from rerank_eval.datasets import load_dataset

    queries = set(load_dataset("bundled", "quickstart", base_dir=tmp_path).queries.values())
    config = hosted_config(tmp_path, server, concurrency=2, max_retries=1)
    server.fail_query = sorted(queries)[len(queries) // 2]  # one query's requests always fail
    assert main(["run", str(config), "--out", str(tmp_path / "a"), "--quiet"]) == 2
    assert "this query always fails" in capsys.readouterr().err
    answered = {pair for r in server.requests if r["status"] == 200
                for pair in _rerank_docs_of(r)}
    assert answered  # some requests came back before the failing one stopped the run

    server.fail_query = None
    server.requests.clear()
    assert main(["run", str(config), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    resent = _rerank_docs(server, queries)
    assert not set(resent) & answered  # no billed answer was asked for twice
    rerun = json.loads((tmp_path / "b" / "results.json").read_text())["rerankers"][0]
    assert rerun["pairs_from_cache"] == len(answered)
    assert rerun["pairs_scored"] == len(resent)  # ... and nothing else was asked for


def _rerank_docs_of(request: dict) -> list[tuple[str, str]]:
    return [(request["body"]["query"], d) for d in request["body"]["documents"]]


def test_a_reranker_error_in_python_is_an_input_error(server, monkeypatch):
    monkeypatch.setenv("COHERE_API_KEY", "a\x01b")
    with pytest.raises(InputError, match="COHERE_API_KEY"):
        make(server)
