"""One exception type for bad user input, rendered by the CLI as a single line."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input from the user: a file, a line or a config field is wrong.

    The message names where the problem is (``file:line: what``) so the CLI can print it
    on one line without a traceback.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        where = ""
        if self.path is not None:
            where = self.path + (f":{line}" if line is not None else "")
        super().__init__(f"{where}: {message}" if where else message)
