"""A real HTTP server on 127.0.0.1 speaking OpenAI's chat-completions schema, for listwise
rerankers: it reads the RankGPT prompt back (query, passages labelled [i]) and answers as a
perfect oracle from the qrels, or with a fault taken from a queue, one per request.

Answer faults (the HTTP exchange is fine, the text is not): ``duplicate``, ``out_of_range``,
``missing``, ``prose`` (no identifier), ``think`` (a reasoning block before a correct answer).
HTTP faults: ``429`` (with Retry-After), ``500``, ``timeout`` (answers after ``hang_s``).
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any

from fake_http import FakeJSONServer

ANSWER_FAULTS = {"duplicate", "out_of_range", "missing", "prose", "think"}
HTTP_FAULTS = {"429", "500", "timeout"}
_QUERY = re.compile(r"Search Query: (.*)\.\nRank the \d+ passages", re.DOTALL)
_PASSAGE = re.compile(r"^\[(\d+)\] (.*)$", re.DOTALL)


class FakeChatServer(FakeJSONServer):
    """``grades(query_text, passage_text) -> grade`` decides the oracle's order (ties keep
    the input order); every request is recorded in ``requests``."""

    def __init__(self, api_key: str | None, grades: Any, *, retry_after: str = "1",
                 hang_s: float = 1.0):
        self.api_key = api_key
        self.grades = grades
        self.retry_after = retry_after
        self.hang_s = hang_s
        self.faults: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        self.answered: list[str] = []  # the answer text of every 200
        super().__init__()

    def fail_next(self, *faults: str) -> None:
        assert set(faults) <= ANSWER_FAULTS | HTTP_FAULTS, faults
        with self.lock:
            self.faults.extend(faults)

    # -- handling --------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self.lock:
            self.requests.append({"path": h.path, "body": body, "headers": dict(h.headers)})
            fault = self.faults.popleft() if self.faults else None
        try:
            self._answer(h, body, fault)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout)

    def _answer(self, h: BaseHTTPRequestHandler, body: Any, fault: str | None) -> None:
        if h.path != "/v1/chat/completions":
            return self._send(h, 404, {"error": {"message": f"no route {h.path}"}})
        wanted = f"Bearer {self.api_key}" if self.api_key else None
        if h.headers.get("Authorization") != wanted:
            return self._send(h, 401, {"error": {"message": "invalid api key"}})
        if fault in {"429", "500"}:
            headers = {"Retry-After": self.retry_after} if fault == "429" else {}
            return self._send(h, int(fault), {"error": {"message": f"simulated {fault}"}},
                              headers)
        if fault == "timeout":
            time.sleep(self.hang_s)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._send(h, 400, {"error": {"message": "messages required"}})
        query, passages = read_prompt(body["messages"])
        grades = [self.grades(query, p) for p in passages]
        order = sorted(range(len(passages)), key=lambda i: -grades[i])
        ids = [i + 1 for i in order]
        if fault == "duplicate":
            ids = ids[:1] + ids[:1] + ids[1:]
        elif fault == "out_of_range":
            ids = ids[:1] + [len(passages) + 7] + ids[1:]
        elif fault == "missing":
            ids = ids[:-3] if len(ids) > 3 else ids[:1]
        text = " > ".join(f"[{i}]" for i in ids)
        if fault == "prose":
            text = "I cannot rank these passages, sorry."
        elif fault == "think":
            text = f"<think>Passage [{len(passages)}] looks off-topic; [1] maybe.</think>\n{text}"
        with self.lock:
            self.answered.append(text)
        n_in = sum(len(m.get("content", "").split()) for m in body["messages"])
        self._send(h, 200, {
            "id": "chatcmpl-fake", "object": "chat.completion", "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": n_in, "completion_tokens": len(text.split()),
                      "total_tokens": n_in + len(text.split())}})


def read_prompt(messages: list[dict[str, str]]) -> tuple[str, list[str]]:
    """The query and the passages (in the order shown) of a RankGPT-style prompt."""
    passages: dict[int, str] = {}
    query = ""
    for m in messages:
        if m.get("role") != "user":
            continue
        content = m.get("content", "")
        found = _QUERY.search(content)
        if found:
            query = found.group(1)
        for part in content.split("\n"):
            hit = _PASSAGE.match(part)
            if hit:
                passages[int(hit.group(1))] = hit.group(2)
    return query, [passages[i] for i in sorted(passages)]
