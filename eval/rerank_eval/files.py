"""The one way this package writes an output file: atomically.

The content goes to a temporary file with a unique name in the target's folder
(``tempfile.mkstemp``: two runs, or two threads, writing into one folder never share a temp
file), is flushed and fsynced, and then replaces the target in one ``os.replace``. A reader
sees the old file or the new one, never half of one; a crash leaves at most a hidden
``.<name>.*.tmp`` behind, never a truncated target. On an OSError (a full disk, a read-only
folder) the temp file is removed and the error is one InputError line naming the target.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from rerank_eval.errors import InputError


def _umask() -> int:
    """The process umask (read once, at import: setting it is not thread-safe)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; an output file gets the mode a plain open() would give it.
FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", *, encoding: str | None = "utf-8",
                newline: str | None = None) -> Iterator[IO[Any]]:
    """A file object whose content replaces ``path`` when the ``with`` block ends without an
    exception (an exception leaves ``path`` as it was). ``mode``: ``"w"`` (text) or ``"wb"``.
    The folder is created if needed."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, FILE_MODE)
        if mode == "wb":
            encoding = newline = None
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise InputError(f"cannot write the file ({e.strerror or e})", path=path) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see the module docstring); returns ``path``."""
    with atomic_open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring); returns ``path``."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)
