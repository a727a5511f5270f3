"""Read a YAML file the user wrote (a config, gate rules): every failure is one InputError
naming the file and, where YAML knows it, the line. A key written twice in one mapping is
refused (naming both lines), and :func:`read_yaml_lines` also tells the line of every key, so
errors about a field can name the line it is on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

from rerank_eval.errors import InputError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and records each mapping's key lines."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.key_lines: dict[int, list[tuple[Any, int]]] = {}

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # `<<: *base` then an explicit key overrides the base: allowed
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # unhashable: the base constructor says so
            if first is not None:
                raise ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"duplicate key {key!r} (first on line {first})", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        mapping = super().construct_mapping(node, deep=deep)  # merges `<<` keys first
        self.key_lines[id(node)] = [(self.construct_object(k, deep=True), k.start_mark.line + 1)
                                    for k, _ in node.value]
        return mapping


class KeyLines:
    """The line (1-based) of every mapping key and list item of a document, by its path."""

    def __init__(self, lines: dict[tuple[Any, ...], int] | None = None):
        self.lines = lines or {}

    def line(self, loc: tuple[Any, ...]) -> int | None:
        """The line of ``loc``, or of its nearest ancestor written in the file."""
        for n in range(len(loc), 0, -1):
            try:
                found = self.lines.get(tuple(loc[:n]))
            except TypeError:
                found = None
            if found is not None:
                return found
        return None


def _walk(node: Node, path: tuple[Any, ...], loader: _Loader, out: dict[tuple[Any, ...], int],
          active: set[int]) -> None:
    if id(node) in active:  # an alias of an enclosing node: a recursive document
        return
    active.add(id(node))
    if isinstance(node, MappingNode):
        for (key, line), (_, value) in zip(loader.key_lines.get(id(node), []), node.value):
            try:
                out[path + (key,)] = line
            except TypeError:
                continue
            _walk(value, path + (key,), loader, out, active)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (i,)] = item.start_mark.line + 1
            _walk(item, path + (i,), loader, out, active)
    active.discard(id(node))


def read_yaml(path: str | Path, what: str = "config") -> Any:
    """The parsed document of ``path`` (``what`` names the file in the not-found error)."""
    return read_yaml_lines(path, what)[0]


def read_yaml_lines(path: str | Path, what: str = "config") -> tuple[Any, KeyLines]:
    """The parsed document of ``path`` and the line of each of its keys and list items."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found", path=path)
    try:
        loader = _Loader(path.read_text(encoding="utf-8"))
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
            lines: dict[tuple[Any, ...], int] = {}
            if node is not None:
                _walk(node, (), loader, lines, set())
        finally:
            loader.dispose()
        return data, KeyLines(lines)
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
