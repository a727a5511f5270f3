"""HTTP for hosted rerankers (stdlib only): one keep-alive connection per worker thread.

Failures are sorted here into the two kinds the retry loop cares about: :class:`Retryable`
(429, 5xx, timeouts, dropped connections, truncated bodies) and a finished response with any
other status, which the caller turns into a fail-fast error with the provider's message.

``timeout_s`` is a deadline for the whole request (connect, send, headers and body), not for
each socket read: a server dribbling a byte at a time would otherwise hold a request for as
long as it likes. A timer shuts the socket down when the deadline passes, which ends any
blocking read at once.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import socket
import threading
import time
from dataclasses import dataclass
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from rerank_eval.rerankers.hosted.response import HostedAPIError, provider_message

LOOPBACK_HOSTS = {"localhost"}


class Retryable(Exception):
    """A transient failure: worth another attempt after a pause."""

    def __init__(self, reason: str, detail: str = "", retry_after: float | None = None):
        super().__init__(f"{reason}{': ' + detail if detail else ''}")
        self.reason = reason
        self.retry_after = retry_after


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes
    latency_s: float


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


class _Deadline:
    """Shuts ``conn``'s socket down ``seconds`` from now unless :meth:`stop` comes first."""

    def __init__(self, conn: http.client.HTTPConnection, seconds: float):
        self._conn = conn
        self._lock = threading.Lock()
        self._stopped = False
        self._expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._expired = True
            sock = self._conn.sock
            if sock is not None:  # the plain socket's shutdown, under any TLS layer
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def stop(self) -> bool:
        """Disarm the timer; True if the deadline had already passed (and the socket is shut
        down). Safe to call more than once."""
        self._timer.cancel()
        with self._lock:
            self._stopped = True
            return self._expired


class Transport:
    """POSTs JSON to ``base_url`` + path; connections are reused per thread."""

    def __init__(self, base_url: str, timeout_s: float):
        parts = urlsplit(base_url)
        self.scheme = parts.scheme
        self.host = parts.hostname or ""
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = (http.client.HTTPSConnection if self.scheme == "https"
                   else http.client.HTTPConnection)
            conn = cls(self.host, self.port, timeout=self.timeout_s)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def post_json(self, path: str, payload: dict[str, Any], headers: dict[str, str]) -> Reply:
        """One attempt. Raises :class:`Retryable` for timeouts and broken transfers."""
        body = json.dumps(payload).encode("utf-8")
        all_headers = {"Content-Type": "application/json", "Accept": "application/json",
                       **headers}
        t0 = time.perf_counter()
        conn = self._connection()
        deadline = _Deadline(conn, self.timeout_s)
        try:
            conn.request("POST", self.prefix + path, body=body, headers=all_headers)
            resp = conn.getresponse()
            data = resp.read()
        except (TimeoutError, OSError, http.client.HTTPException) as e:
            self._drop()
            if isinstance(e, TimeoutError) or deadline.stop():
                raise Retryable("timeout", f"no complete answer within {self.timeout_s:g} s"
                                ) from None
            if isinstance(e, http.client.IncompleteRead):
                raise Retryable("truncated body",
                                f"got {len(e.partial)} bytes, connection closed early") from None
            raise Retryable("connection error", type(e).__name__) from None
        except ValueError as e:
            # http.client refuses a header it cannot send; its message would quote the header
            # (the API key), so only the kind of error is kept.
            self._drop()
            raise HostedAPIError(f"a request to {self.host} could not be sent "
                                 f"({type(e).__name__} in its headers)") from None
        finally:
            expired = deadline.stop()
        if resp.will_close or expired:
            self._drop()  # a socket the timer shut down is never reused
        return Reply(resp.status, resp.headers, data, time.perf_counter() - t0)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


def accept_json(reply: Reply, label: str, endpoint: str, secret: str = "",
                bare_list_key: str | None = None) -> dict[str, Any]:
    """A 200 with a JSON object, or Retryable (429/5xx/408/broken JSON), or a fatal error;
    the provider's error text has ``secret`` scrubbed. With ``bare_list_key``, a bare JSON
    list is accepted as ``{bare_list_key: list}`` (TEI)."""
    status = reply.status
    if status == 429 or status == 408 or status >= 500:
        raise Retryable(f"HTTP {status}", provider_message(reply.body, secret),
                        parse_retry_after(reply.headers.get("Retry-After")))
    if status != 200:
        raise HostedAPIError(f"{label}: HTTP {status} from {endpoint}: "
                             f"{provider_message(reply.body, secret)}")
    try:
        body = json.loads(reply.body)
    except (UnicodeDecodeError, ValueError):
        raise Retryable("invalid JSON body",
                        f"{len(reply.body)} bytes that do not parse") from None
    if bare_list_key is not None and isinstance(body, list):
        body = {bare_list_key: body}
    if not isinstance(body, dict):
        raise HostedAPIError(f"{label}: response is {type(body).__name__}, not a JSON object")
    return body
