"""What the fake servers share: a real threaded HTTP server on 127.0.0.1 that hands every
POST to the subclass's ``_handle`` and answers JSON through ``_send``."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

S = TypeVar("S", bound="FakeJSONServer")


class FakeJSONServer:
    """Started on construction (an ephemeral port, see :attr:`url`); ``close`` stops it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: Any,
              headers: Mapping[str, str] | None = None, raw: bytes | None = None) -> None:
        """``body`` as JSON (or ``raw`` bytes as they are) with ``status`` and ``headers``;
        the status is noted in the request's record when the handler carries one (``entry``)."""
        data = raw if raw is not None else json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
        entry = getattr(h, "entry", None)
        if entry is not None:
            entry["status"] = status
