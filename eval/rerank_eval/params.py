"""Typed parameters: the base of every config section and of every plugin's params model, and
the one place pydantic's errors become a one-line InputError naming the field.

A model derives :class:`Params` (unknown keys refused, with a did-you-mean) and is validated
with :func:`parse`, which reports the first error only::

    rerankers[0].batch_size: must be a positive integer, got 0
    config: unknown key 'deptsh' (did you mean 'depths'?)

Validators raise :func:`field_error` (a message about the value, or a field below it) and
read the config's folder from the validation context (:func:`context_base_dir`). The error
carries ``loc``, the field's place in the raw input, so a caller holding the YAML's key lines
(``yaml_file.read_yaml_lines``) can name the line too.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from rerank_eval.errors import InputError

Loc = tuple[Any, ...]  # mapping keys and list indices from the root of the raw input
M = TypeVar("M", bound="Params")
T = TypeVar("T")


class FieldError(InputError):
    """An InputError about one field. ``loc`` is where that field is in the raw input (mapping
    keys and list indices), so the caller can add the line it was written on; ``message`` is
    the text without the ``file:line:`` prefix."""

    def __init__(self, message: str, *, loc: Loc = (), path: str | Path | None = None,
                 line: int | None = None):
        super().__init__(message, path=path, line=line)
        self.message = message
        self.loc = tuple(loc)

    def located(self, path: str | Path, line: int | None) -> FieldError:
        """The same error, naming the file (and line) it came from."""
        return FieldError(self.message, loc=self.loc, path=path, line=line)


def field_error(message: str, *subpath: Any) -> PydanticCustomError:
    """An error to raise in a validator: ``message`` about the value being validated, or about
    the field ``subpath`` below it (``field_error("duplicate name 'a'", 1, "name")``)."""
    return PydanticCustomError("field", "{message}", {"message": message, "subpath": subpath})


class Params(BaseModel):
    """Base of every config section and plugin parameter model.

    Unknown keys are refused with the closest known one suggested. Subclasses may override
    :meth:`_shorthand` (turn a non-mapping form, e.g. a bare path, into the mapping) and
    :meth:`_check_raw` (checks and rewrites of the raw mapping before its fields are
    validated); ``shorthand_schema`` is the JSON Schema of the non-mapping forms.
    """

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True,
                              protected_namespaces=())

    unknown_noun: ClassVar[str] = "key"  # "unknown <noun> 'x'"
    shorthand_schema: ClassVar[dict[str, Any] | None] = None

    @model_validator(mode="before")
    @classmethod
    def _before(cls, data: Any) -> Any:
        data = cls._shorthand(data)
        if isinstance(data, dict):
            _refuse_unknown_keys(cls, data)
            data = cls._check_raw(data)
        return data

    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return data

    @classmethod
    def _check_raw(cls, data: dict[Any, Any]) -> dict[Any, Any]:
        return data

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema = handler(core_schema)
        if cls.shorthand_schema is None:
            return schema
        return {"anyOf": [cls.shorthand_schema, handler.resolve_ref_schema(schema)]}

    @classmethod
    def coerce(cls: type[M], value: Any, *, where: str, base_dir: Path | None = None) -> M:
        """``value`` if it already is one of these, else ``value`` validated (a mapping, or
        a shorthand): what a plugin does with the params it is given."""
        if isinstance(value, cls):
            return value
        return parse(cls, {} if value is None else value, where=where,
                     context={"base_dir": base_dir})


def _refuse_unknown_keys(cls: type[Params], data: dict[Any, Any]) -> None:
    allowed = list(cls.model_fields)
    for key in data:
        if key in cls.model_fields:
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = (f"did you mean {close[0]!r}?" if close
                else f"allowed: {', '.join(sorted(allowed)) or 'none'}")
        raise PydanticCustomError("unknown_key", "{message}", {
            "message": f"unknown {cls.unknown_noun} {_show(key)} ({hint})", "key": key})


def parse(model: type[M], raw: Any, *, where: str | None = None, root: str = "config",
          context: Mapping[str, Any] | None = None,
          name: Callable[[Loc], str] | None = None) -> M:
    """``raw`` validated as ``model``; the first error as one FieldError line.

    ``where`` prefixes field paths (``rerankers[ce]``; none: paths start at the root, called
    ``root`` in messages); ``name`` replaces the path naming altogether (e.g. command-line
    flags); ``context`` reaches validators (``base_dir``: the folder relative paths are in).
    """
    try:
        return model.model_validate(raw, context=dict(context or {}))
    except ValidationError as e:
        raise _first_error(e, raw, where or None, root, name) from None


def _first_error(e: ValidationError, raw: Any, where: str | None, root: str,
                 name: Callable[[Loc], str] | None) -> FieldError:
    err = e.errors(include_url=False)[0]
    ctx = err.get("ctx") or {}
    loc = tuple(err["loc"])
    bad_key = loc[-1:] == ("[key]",)  # a mapping's key is wrong, not its value
    loc = loc[:-1] if bad_key else loc
    if err["type"] == "field":
        loc += tuple(ctx.get("subpath") or ())
    loc = _raw_loc(raw, loc)
    if err["type"] in ("union_tag_invalid", "union_tag_not_found") and \
            str(ctx.get("discriminator", "")).strip("'") == "kind":
        loc += ("kind",)
    text = _describe(err)
    if bad_key and loc:
        text = f"key {_show(loc[-1])}: {text}"
        loc = loc[:-1]
    path = name(loc) if name is not None else (format_path(loc, where) or root)
    line_loc = loc + ((ctx["key"],) if err["type"] == "unknown_key" else ())
    return FieldError(f"{path}: {text}".replace("\n", "\\n"), loc=line_loc)


def _raw_loc(raw: Any, loc: Loc) -> Loc:
    """pydantic's error location as a path through the raw input: a tagged union puts its tag
    (a reranker's kind) in the location, which is no key of the input, so it is dropped."""
    out: list[Any] = []
    node = raw
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict):
            if part in node:
                out.append(part)
                node = node[part]
                continue
            if not last or not _is_name(part) or part == node.get("kind"):
                continue  # a union tag
            out.append(part)
            node = None
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        else:
            out.append(part)
            node = None
    return tuple(out)


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def _is_name(part: Any) -> bool:
    return isinstance(part, str) and bool(_NAME.match(part))


def format_path(loc: Loc, where: str | None = None) -> str:
    """``('rerankers', 1, 'batch_size')`` -> ``rerankers[1].batch_size``, after ``where``."""
    text = where or ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        elif _is_name(part):
            text += ("." if text else "") + part
        else:
            text += f"[{part!r}]"
    return text


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def type_name(value: Any) -> str:
    """What a value is, in the words of a YAML user."""
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing",
            bool: "a boolean", int: "an integer", float: "a number"}.get(
        type(value), type(value).__name__)


def _describe(err: Any) -> str:
    """pydantic's error in the words of this project's messages."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    got = f", got {_show(value)}"
    if kind in ("field", "unknown_key", "expected"):
        return str(ctx.get("message", err["msg"]))
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "expected an integer" + got
    if kind in ("bool_type", "bool_parsing"):
        return "expected true or false" + got
    if kind == "string_type":
        return "expected a string" + got
    if kind in ("float_type", "float_parsing"):
        return "expected a number" + got
    if kind == "finite_number":
        return "expected a finite number" + got
    if kind == "greater_than_equal":
        if ctx.get("ge") == 1 and isinstance(value, int):
            return "must be a positive integer" + got
        return f"must be >= {_num(ctx.get('ge'))}" + got
    if kind == "greater_than":
        return f"must be > {_num(ctx.get('gt'))}" + got
    if kind == "less_than_equal":
        return f"must be <= {_num(ctx.get('le'))}" + got
    if kind == "less_than":
        return f"must be < {_num(ctx.get('lt'))}" + got
    if kind == "list_type":
        return f"expected a list, got {type_name(value)}"
    if kind == "too_short":
        if isinstance(value, str):
            return "expected a non-empty string"
        n = ctx.get("min_length")
        return ("expected a non-empty list" if n == 1 else f"expected at least {n} items") + got
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} items" + got
    if kind == "string_too_short":
        return "expected a non-empty string"
    if kind in ("dict_type", "model_type", "model_attributes_type", "dataclass_type"):
        return f"expected a mapping, got {type_name(value)}"
    if kind in ("literal_error", "enum"):
        expected = re.sub(r"\bTrue\b", "true", re.sub(r"\bFalse\b", "false",
                                                      str(ctx.get("expected", ""))))
        return f"expected {expected}" + got
    if kind == "union_tag_invalid":
        tags = str(ctx.get("expected_tags", "")).replace("'", "")
        return f"unknown kind {_show(ctx.get('tag'))} (available: {tags})"
    if kind == "union_tag_not_found":
        return "required"
    if kind == "string_pattern_mismatch":
        return f"expected a string matching {ctx.get('pattern')}" + got
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", err["msg"]))
    msg = str(err["msg"])
    return msg[:1].lower() + msg[1:] + got


# ------------------------------------------------------------------ building blocks
def context_base_dir(info: ValidationInfo) -> Path | None:
    """The folder relative paths are resolved against (``parse(..., context=...)``)."""
    ctx = info.context
    base = ctx.get("base_dir") if isinstance(ctx, dict) else None
    return Path(base) if base is not None else None


def on_error(message: str) -> WrapValidator:
    """Any error of this (scalar or list-of-scalars) field is reported as ``message``;
    ``{value}`` in it is the value as written."""
    def wrap(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("expected", "{message}", {
                "message": message.replace("{value}", _show(value))}) from None

    return WrapValidator(wrap)


def expected(what: str) -> WrapValidator:
    """Any error of this field reads ``expected <what>, got <value>``."""
    return on_error(f"expected {what}, got {{value}}")


def check_before(ok: Callable[[Any], bool], message: str) -> BeforeValidator:
    """Refuse the raw value with ``message`` (``{value}``: the value as written) unless
    ``ok(value)``, before the field's own validation (e.g. for a container whose items report
    their own errors)."""
    def check(value: Any) -> Any:
        if not ok(value):
            raise field_error(message.replace("{value}", _show(value)))
        return value

    return BeforeValidator(check)


_HERE = "\x00"


def as_field_error(check: Callable[[str], T]) -> T:
    """Run ``check(field)``, written to raise ``InputError(f"{field}: ...")`` (such as
    ``models.resolve_model``), inside a validator: its error becomes the validated field's."""
    try:
        return check(_HERE)
    except InputError as e:
        text = str(e)
        raise field_error(text[3:] if text.startswith(_HERE + ": ") else text) from None


Int = Annotated[int, Field(strict=True)]
PositiveInt = Annotated[int, Field(strict=True, ge=1)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
NonNegativeNumber = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
PositiveNumber = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
Bool = Annotated[bool, Field(strict=True)]
Str = Annotated[str, Field(strict=True)]
NonEmptyStr = Annotated[str, Field(strict=True, min_length=1)]
#: What a name (experiment, reranker, sweep dataset) may hold: it becomes a folder or a file
#: name, a TREC run tag and a JUnit test name, so only characters that are safe in all of them
#: on every OS: ASCII letters, digits, '.', '_', '-', not starting with '.' or '-' (no '..', no
#: hidden files, no option-like names), at most 100 of them.
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$"
NAME_RULE = ("a name of letters, digits, '.', '_', '-' (not starting with '.' or '-', "
             "at most 100)")
Name = Annotated[str, Field(strict=True, pattern=NAME_PATTERN), expected(NAME_RULE)]


def is_safe_name(value: object) -> bool:
    """Whether ``value`` is a valid :data:`Name`."""
    return isinstance(value, str) and re.fullmatch(NAME_PATTERN, value) is not None


def is_non_empty_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value)
