"""Client-side rate limit for hosted APIs: requests and tokens per sliding window.

Staying under the provider's published limits avoids most 429s (and their retry delays) in
the first place; the retry loop handles the rest.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """Blocks until one more request of ``tokens`` fits in the last ``window_s`` seconds.

    A single request larger than ``tokens_per_window`` is let through alone once the window is
    empty (otherwise it could never be sent). Thread-safe.
    """

    def __init__(self, requests_per_window: int | None, tokens_per_window: int | None, *,
                 window_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.requests = requests_per_window
        self.tokens = tokens_per_window
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._events: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def acquire(self, tokens: int = 0) -> float:
        """Reserve a slot for a request of ``tokens``; returns the seconds spent waiting."""
        if self.requests is None and self.tokens is None:
            return 0.0
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._events and self._events[0][0] <= now - self.window_s:
                    self._events.popleft()
                used = sum(t for _, t in self._events)
                fits_requests = self.requests is None or len(self._events) < self.requests
                fits_tokens = (self.tokens is None or not self._events
                               or used + tokens <= self.tokens)
                if fits_requests and fits_tokens:
                    self._events.append((now, tokens))
                    return waited
                wait = max(self._events[0][0] + self.window_s - now, 1e-3)
            self._sleep(wait)
            waited += wait
