"""A real HTTP server on 127.0.0.1 that speaks the four providers' rerank schemas and the
self-hosted servers' (TEI, Infinity, vLLM /rerank and /score).

Each provider is mounted under its own prefix (``/cohere``, ``/jina``, ``/voyage``,
``/mixedbread``, ``/tei``, ``/infinity`` (served under Infinity's ``--url-prefix /v1``),
``/vllm``, ``/vllm-score``) so one server serves all of them; the base_url of a reranker is
``server.base_url(kind)``. Self-hosted mounts take requests without a key (a server started
without ``--api-key``) but refuse a wrong one. Like the real servers, TEI, Infinity and vLLM
return sigmoid probabilities unless TEI/Infinity are sent ``raw_scores: true`` (vLLM always
applies it to a one-label classifier). The server checks the request as the real API would
(bearer key, required and unknown fields, the document cap, top_n within range), scores with a
deterministic word-overlap function, and can be told to misbehave on the next requests
(``fail_next``) or to drop every request for a while (``outage``).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any

from fake_http import FakeJSONServer

WORD = re.compile(r"[a-z0-9]+")


def overlap_score(query: str, doc: str) -> float:
    """Deterministic relevance: share of the query's distinct words found in the document."""
    q = set(WORD.findall(query.lower()))
    d = set(WORD.findall(doc.lower()))
    return len(q & d) / (len(q) + 1)


def n_tokens(text: str) -> int:
    return len(WORD.findall(text.lower()))


# provider -> (path, documents field, top field, required fields, optional fields)
SCHEMAS: dict[str, tuple[str, str, str, set[str], set[str]]] = {
    "cohere": ("/v2/rerank", "documents", "top_n", {"model", "query", "documents"},
               {"top_n", "max_tokens_per_doc", "return_documents"}),
    "jina": ("/v1/rerank", "documents", "top_n", {"model", "query", "documents"},
             {"top_n", "return_documents"}),
    "voyage": ("/v1/rerank", "documents", "top_k", {"model", "query", "documents"},
               {"top_k", "truncation", "return_documents"}),
    "mixedbread": ("/v1/reranking", "input", "top_k", {"model", "query", "input"},
                   {"top_k", "return_input", "rank_fields"}),
    # TEI: POST /rerank {query, texts, raw_scores, return_text, truncate, truncation_direction}
    "tei": ("/rerank", "texts", "", {"query", "texts"},
            {"raw_scores", "return_text", "truncate", "truncation_direction"}),
    # Infinity 0.0.78 RerankInput; served here under --url-prefix /v1
    "infinity": ("/v1/rerank", "documents", "top_n", {"query", "documents"},
                 {"model", "return_documents", "raw_scores", "top_n"}),
    "vllm": ("/rerank", "documents", "top_n", {"query", "documents"},
             {"model", "top_n", "truncate_prompt_tokens"}),
    "vllm-score": ("/score", "text_2", "", {"text_1", "text_2"},
                   {"model", "truncate_prompt_tokens"}),
}
SELF_HOSTED = {"tei", "infinity", "vllm", "vllm-score"}
SELF_HOSTED_BASE = {"infinity": "/v1"}  # the URL prefix a base_url must include


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))

FAULTS = {"429", "500", "503", "timeout", "truncated", "bad_json", "bad_index", "duplicate",
          "missing", "nan", "400", "echo_auth", "echo_key_401", "drip"}


class FakeRerankServer(FakeJSONServer):
    def __init__(self, api_key: str, *, doc_cap: int = 1000, retry_after: str = "1",
                 hang_s: float = 1.0, delay_s: float = 0.0):
        self.api_key = api_key
        self.doc_cap = doc_cap
        self.retry_after = retry_after
        self.hang_s = hang_s
        self.delay_s = delay_s
        self.requests: list[dict[str, Any]] = []  # every request that reached a handler
        self.faults: deque[str] = deque()
        self.broken: dict[str, str] = {}  # provider -> fault it answers every request with
        self.fail_query: str | None = None  # every request for this query text gets a 500
        self.echo_pad = 0  # echo_key_401: characters of text before the echoed key
        self.drip_bytes = 16  # drip: the first bytes of the body, one every drip_s
        self.drip_s = 0.25
        self.in_flight = 0
        self.max_in_flight = 0
        self.down_until = 0.0  # monotonic time until which every request is dropped unanswered
        self.outage_plan: tuple[int, float] | None = None  # (after n requests, for seconds)
        super().__init__()

    def base_url(self, provider: str) -> str:
        return f"{self.url}/{provider}{SELF_HOSTED_BASE.get(provider, '')}"

    def fail_next(self, *faults: str) -> None:
        assert set(faults) <= FAULTS, faults
        with self.lock:
            self.faults.extend(faults)

    def outage(self, seconds: float) -> None:
        """From now on for ``seconds``, hang up on every request without an answer (a server
        restarting: the client sees the connection dropped)."""
        with self.lock:
            self.down_until = time.monotonic() + seconds

    def outage_after(self, requests: int, seconds: float) -> None:
        """Go down (as :meth:`outage`) for ``seconds`` once ``requests`` requests were answered:
        a restart in the middle of a run."""
        with self.lock:
            self.outage_plan = (requests, seconds)

    # -- request handling ------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length", 0))
        raw = h.rfile.read(length)
        with self.lock:
            if self.outage_plan is not None and len(self.requests) >= self.outage_plan[0]:
                self.down_until = time.monotonic() + self.outage_plan[1]
                self.outage_plan = None
        if time.monotonic() < self.down_until:
            h.close_connection = True  # no status line: the client sees a dropped connection
            return
        parts = h.path.strip("/").split("/", 1)
        provider, path = parts[0], "/" + (parts[1] if len(parts) > 1 else "")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self.lock:
            h.entry = {"provider": provider, "path": path, "body": body,
                       "headers": dict(h.headers), "status": None}
            self.requests.append(h.entry)
            fault = self.broken.get(provider) or (self.faults.popleft() if self.faults else None)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            self._answer(h, provider, path, body, fault)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout scenario)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _answer(self, h: BaseHTTPRequestHandler, provider: str, path: str, body: Any,
                fault: str | None) -> None:
        if provider not in SCHEMAS or path != SCHEMAS[provider][0]:
            return self._send(h, 404, {"message": f"no route {h.path}"})
        expected_path, docs_field, top_field, required, optional = SCHEMAS[provider]
        auth = h.headers.get("Authorization")
        if (auth is not None or provider not in SELF_HOSTED) and auth != f"Bearer {self.api_key}":
            return self._send(h, 401, {"message": "invalid api token"})
        if fault == "echo_key_401":  # a 401 quoting the key, after echo_pad characters
            key = h.headers["Authorization"].removeprefix("Bearer ")
            return self._send(h, 401, {"message": "x" * self.echo_pad + key + " is not valid"})
        if fault == "echo_auth":  # a careless provider that echoes the header it received
            return self._send(h, 400, {"message": f"bad request with {h.headers['Authorization']}"})
        if self.fail_query is not None and isinstance(body, dict) \
                and body.get("query") == self.fail_query:
            return self._send(h, 500, {"message": "this query always fails"})
        if fault in {"429", "500", "503"}:
            headers = {"Retry-After": self.retry_after} if fault == "429" else {}
            return self._send(h, int(fault), {"message": f"simulated {fault}"}, headers)
        if fault == "400":
            return self._send(h, 400, {"message": "model 'nope' not found"})
        if fault == "timeout":
            time.sleep(self.hang_s)
        if not isinstance(body, dict):
            return self._send(h, 400, {"message": "body must be a JSON object"})
        missing = sorted(required - set(body))
        unknown = sorted(set(body) - required - optional)
        if missing or unknown:
            return self._send(h, 422, {"message": f"missing {missing}, unknown {unknown}"})
        query = body["text_1" if provider == "vllm-score" else "query"]
        docs = body[docs_field]
        if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs) or not docs:
            return self._send(h, 422, {"message": f"{docs_field} must be a list of strings"})
        if len(docs) > self.doc_cap:
            return self._send(h, 400, {"message": f"too many documents: {len(docs)} > "
                                                  f"{self.doc_cap}"})
        top = body.get(top_field, len(docs)) if top_field else len(docs)
        if not isinstance(top, int) or not 1 <= top <= len(docs):
            return self._send(h, 422, {"message": f"{top_field} out of range"})
        ranked = sorted(range(len(docs)), key=lambda i: -overlap_score(query, docs[i]))[:top]
        score_key = ("score" if provider in {"mixedbread", "tei", "vllm-score"}
                     else "relevance_score")
        squash = provider in SELF_HOSTED and not body.get("raw_scores", False)
        items: list[dict[str, Any]] = [
            {"index": i, score_key: (sigmoid if squash else float)(overlap_score(query, docs[i]))}
            for i in ranked]
        if fault == "bad_index":
            items[-1]["index"] = len(docs) + 5
        elif fault == "duplicate" and len(items) > 1:
            items[-1]["index"] = items[0]["index"]
        elif fault == "missing":
            items.pop()
        elif fault == "nan":
            items[0][score_key] = math.nan
        tokens = n_tokens(query) * len(docs) + sum(n_tokens(d) for d in docs)
        chars = len(query) * len(docs) + sum(len(d) for d in docs)
        out: Any
        if provider == "tei":
            out = items  # a bare list
        elif provider == "infinity":  # usage counts characters, whatever its name says
            out = {"object": "rerank", "results": [{**i, "document": None} for i in items],
                   "model": body.get("model", "default/not-specified"),
                   "usage": {"prompt_tokens": chars, "total_tokens": chars},
                   "id": "infinity-fake", "created": 0}
        elif provider == "vllm":
            out = {"id": "rerank-fake", "model": body.get("model", "served"),
                   "usage": {"total_tokens": tokens},
                   "results": [{**i, "document": {"text": docs[i["index"]]}} for i in items]}
        elif provider == "vllm-score":
            out = {"id": "score-fake", "object": "list", "created": 0,
                   "model": body.get("model", "served"),
                   "data": [{**i, "object": "score"} for i in sorted(items,
                                                                   key=lambda i: i["index"])],
                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens,
                             "completion_tokens": 0}}
        elif provider == "cohere":
            out = {"id": "fake", "results": items,
                   "meta": {"api_version": {"version": "2"},
                            "billed_units": {"search_units": math.ceil(len(docs) / 100)}}}
        elif provider == "jina":
            out = {"model": body["model"], "results": items,
                   "usage": {"total_tokens": tokens, "prompt_tokens": tokens}}
        elif provider == "voyage":
            out = {"object": "list", "data": items, "model": body["model"],
                   "usage": {"total_tokens": tokens}}
        else:
            out = {"object": "list", "model": body["model"], "top_k": top,
                   "return_input": False, "data": items,
                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        data = json.dumps(out).encode()
        if fault == "truncated":  # promise the whole body, send half, hang up
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            return None
        if fault == "drip":  # the whole body promised, its first bytes sent one at a time
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            for i in range(min(self.drip_bytes, len(data))):
                h.wfile.write(data[i:i + 1])
                h.wfile.flush()
                time.sleep(self.drip_s)
            h.wfile.write(data[self.drip_bytes:])
            return None
        if fault == "bad_json":
            return self._send(h, 200, None, raw=data[: len(data) // 2])
        return self._send(h, 200, None, raw=data)


# Two queries and their candidates, the pairs the hosted-reranker tests score.
QUERIES = {
    "how many legs does a spider have": [
        "Spiders have eight legs.", "The stock market rose.", "A spider is an arachnid.",
        "Insects have six legs.", "Bananas are yellow.",
    ],
    "boiling point of water": [
        "Water boils at 100 degrees.", "Jazz began in New Orleans.",
        "The boiling point depends on pressure.",
    ],
}
PAIRS = [(q, d) for q, docs in QUERIES.items() for d in docs]
