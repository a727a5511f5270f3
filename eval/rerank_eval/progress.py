"""Progress bars and step timing: the one place that decides whether a bar is drawn.

Every step that can take more than a few seconds (BM25 indexing and retrieval, corpus
embedding, scoring, latency probes, hosted requests) runs inside a :class:`Progress`:

- a tqdm bar (rate and ETA) on stderr, only when bars are on: by default when stderr is a
  terminal; ``set_progress_bars(False)`` turns them off (the CLI's ``--quiet``),
  ``set_progress_bars(True)`` forces them (even into a pipe or a test's captured stderr);
- one log line when the step finishes, bar or not (by default INFO, e.g.
  ``minilm-ce: scored 3,000 pairs in 41.2 s (72.8 pairs/s)``).

The library only logs (``logging.getLogger(__name__)``); where the lines go is the caller's
choice: the CLI attaches :class:`LogHandler` to the ``rerank_eval`` logger, a library user
configures ``logging.getLogger("rerank_eval")`` as they like. tqdm is imported only when a bar
is drawn.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

_bars: bool | None = None  # None: bars when stderr is a terminal
# tqdm's default, with the rate always as "12.3 pairs/s" (never inverted to "0.08s/ pairs").
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}]"
_lock = threading.Lock()


def set_progress_bars(enabled: bool | None) -> bool | None:
    """``True`` draws bars even when stderr is not a terminal, ``False`` never draws them,
    ``None`` (the default) draws them when stderr is a terminal. Returns the previous setting,
    so a caller can restore it."""
    global _bars
    previous, _bars = _bars, enabled
    return previous


def progress_bars() -> bool:
    """Whether a bar started now is drawn (third-party bars, like bm25s's, follow this too)."""
    if _bars is not None:
        return _bars
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Progress:
    """One step: a bar while it runs (when bars are on) and one log line when it is done.

    ``label`` names the bar (``"minilm-ce: scoring"``); ``done`` starts the final line (default
    ``label``): ``"{done} {count:,} {unit} in {s:.1f} s ({rate:,.1f} {unit}/s)"``. ``level``
    None logs nothing at the end (the caller logs its own line); ``bar=False`` only times the
    step. Use as a context manager, or call :meth:`close`; an exception closes the bar without
    the final line. Thread-safe :meth:`update`; an instance is also a
    ``progress(done, total)`` callback.
    """

    def __init__(self, label: str, total: int | None = None, *, unit: str = "it",
                 done: str | None = None, logger: logging.Logger | None = None,
                 level: int | None = logging.INFO, bar: bool = True, initial: int = 0):
        self.label = label
        self.total = total
        self.unit = unit
        self.done_label = done or label
        self.logger = logger or logging.getLogger(__name__)
        self.level = level
        self.n = initial
        self.initial = initial
        self.start = time.perf_counter()
        self.end: float | None = None  # set when the step is closed
        self.closed = False
        self._bar: Any = None
        if bar and progress_bars():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit=f" {unit}", initial=initial,
                             leave=False, file=sys.stderr, dynamic_ncols=True,
                             mininterval=0.5, smoothing=0.1, bar_format=BAR_FORMAT)

    @property
    def elapsed(self) -> float:
        """Seconds since the step started, or that it took once closed."""
        return (self.end if self.end is not None else time.perf_counter()) - self.start

    def update(self, n: int = 1) -> None:
        with _lock:
            if self.closed:
                return
            self.n += n
            if self._bar is not None:
                self._bar.update(n)

    def __call__(self, done: int, total: int | None = None) -> None:
        """Progress callback form: ``done`` items so far (of ``total``)."""
        with _lock:
            if self.closed:
                return
            if total is not None and total != self.total:
                self.total = total
                if self._bar is not None:
                    self._bar.total = total
            step, self.n = done - self.n, done
            if self._bar is not None and step:
                self._bar.update(step)

    def summary(self) -> str:
        """The default final line: count, time and rate of this step."""
        count = self.n - self.initial
        seconds = self.elapsed
        rate = f" ({count / seconds:,.1f} {self.unit}/s)" if seconds > 0 and count else ""
        return f"{self.done_label} {count:,} {self.unit} in {seconds:.1f} s{rate}"

    def close(self, message: str | None = None) -> float:
        """Remove the bar and log ``message`` (default :meth:`summary`) at ``level``; returns
        the step's seconds. Closing again does nothing."""
        if self._finish() and self.level is not None:
            self.logger.log(self.level, message if message is not None else self.summary())
        return self.elapsed

    def abort(self) -> None:
        """Remove the bar without the final line (the step failed or was interrupted)."""
        self._finish()

    def _finish(self) -> bool:
        """Stop the clock and remove the bar; False when already done."""
        with _lock:
            if self.closed:
                return False
            self.closed = True
            self.end = time.perf_counter()
            if self._bar is not None:
                self._bar.close()
        return True

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class LogHandler(logging.Handler):
    """Writes each record as one line to the *current* ``sys.stderr`` (so it follows a test's
    capture or a reassigned stream), above any progress bar rather than through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            stream = sys.stderr
            if stream is None:
                return
            tqdm = sys.modules.get("tqdm")
            if tqdm is not None:  # a bar may be on screen: clear it, write, redraw it
                tqdm.tqdm.write(message, file=stream)
            else:
                stream.write(message + "\n")
                stream.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging must never fail the run
            self.handleError(record)


class LineFormatter(logging.Formatter):
    """Plain lines: the message alone; warnings and errors start with their level
    (``WARNING: ...``)."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname}: {message}"
        return message
