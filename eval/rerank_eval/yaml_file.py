"""Read a YAML file the user wrote (a config, gate rules): every failure is one InputError
naming the file and, where YAML knows it, the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rerank_eval.errors import InputError


def read_yaml(path: str | Path, what: str = "config") -> Any:
    """The parsed document of ``path`` (``what`` names the file in the not-found error)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found", path=path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise InputError(f"invalid YAML: {problem}", path=path, line=line) from None
    except UnicodeDecodeError:
        raise InputError("not valid UTF-8", path=path) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        # PyYAML's constructors raise these for e.g. an impossible date (2001-13-01).
        raise InputError(f"invalid YAML value ({type(e).__name__}: {e})"[:200],
                         path=path) from None
