"""Declarative request-parameter schemas: one small table per action, checked in one place.

Every action declares its parameters as ``{name: Param}``. :func:`validate` walks the request
body against it and raises the error a client would get from the cloud:

* a name the action does not define → ``UnknownParameter`` (at any depth: ``Mod.Foo``);
* a required name that is absent (or JSON null) → ``MissingParameter`` (or the param's code);
* a value of the wrong JSON type → ``InvalidParameter`` (or the param's code);
* an empty string/array where the param forbids it → the param's ``empty`` code;
* a value outside ``choices``/``minimum``/``maximum``/``pattern`` → ``invalid``; one longer than
  ``max_length``/``max_bytes`` → ``too_long`` (default ``invalid``).

Rules that depend on several parameters (AccessProtocol decides which others are needed,
time sections, lifecycles) stay in the action handlers.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import IssError

Params = dict[str, Any]


class Kind(enum.Enum):
    """The JSON types iss parameters use (spec README section 6)."""

    STRING = "String"
    INTEGER = "Integer"
    BOOLEAN = "Boolean"
    FLOAT = "Float"
    OBJECT = "Object"
    ARRAY = "Array"


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: its type, whether it is required, and its value rules with their codes."""

    kind: Kind
    required: bool = False
    fields: Mapping[str, Param] = field(default_factory=dict)
    item: Param | None = None
    choices: frozenset[Any] | None = None
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    max_bytes: int | None = None
    pattern: re.Pattern[str] | None = None
    missing: str = "MissingParameter"
    wrong_type: str = "InvalidParameter"
    empty: str | None = None
    too_long: str | None = None
    invalid: str = "InvalidParameterValue"


def string(required: bool = False, **rules: Any) -> Param:
    return Param(Kind.STRING, required, **rules)


def integer(required: bool = False, **rules: Any) -> Param:
    return Param(Kind.INTEGER, required, **rules)


def boolean(required: bool = False, **rules: Any) -> Param:
    return Param(Kind.BOOLEAN, required, **rules)


def obj(fields: Mapping[str, Param], required: bool = False, **rules: Any) -> Param:
    return Param(Kind.OBJECT, required, fields=fields, **rules)


def array(item: Param, required: bool = False, **rules: Any) -> Param:
    return Param(Kind.ARRAY, required, item=item, **rules)


Schema = Mapping[str, Param]


def validate(schema: Schema, body: Params) -> None:
    """Raise the first :class:`IssError` that ``body`` deserves under ``schema``."""
    _check_object(schema, body, prefix="")


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_object(fields: Schema, value: Mapping[str, Any], prefix: str) -> None:
    for name in value:
        if name not in fields:
            raise IssError("UnknownParameter", f"The parameter `{_path(prefix, name)}` is not recognized.")
    for name, param in fields.items():
        present = value.get(name)
        if present is None:
            if param.required:
                raise IssError(param.missing, f"The parameter `{_path(prefix, name)}` is missing.")
            continue
        _check_value(param, present, _path(prefix, name))


def _is_kind(kind: Kind, value: Any) -> bool:
    match kind:
        case Kind.STRING:
            return isinstance(value, str)
        case Kind.INTEGER:
            return isinstance(value, int) and not isinstance(value, bool)
        case Kind.BOOLEAN:
            return isinstance(value, bool)
        case Kind.FLOAT:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        case Kind.OBJECT:
            return isinstance(value, dict)
        case Kind.ARRAY:
            return isinstance(value, list)
    return False  # pragma: no cover - exhaustive match


def _check_value(param: Param, value: Any, path: str) -> None:
    if not _is_kind(param.kind, value):
        raise IssError(param.wrong_type, f"The parameter `{path}` must be of type {param.kind.value}.")
    if param.empty is not None and value in ("", []):
        raise IssError(param.empty, f"The parameter `{path}` must not be empty.")
    if param.kind is Kind.OBJECT:
        _check_object(param.fields, value, path)
        return
    if param.kind is Kind.ARRAY:
        assert param.item is not None
        for position, element in enumerate(value):
            if element is None:
                raise IssError(param.item.wrong_type, f"The parameter `{path}.{position}` must not be null.")
            _check_value(param.item, element, f"{path}.{position}")
        _check_rules(param, value, path)
        return
    _check_rules(param, value, path)


def _check_rules(param: Param, value: Any, path: str) -> None:
    if param.choices is not None and value not in param.choices:
        raise IssError(param.invalid, f"The value of `{path}` is not one of the allowed values.")
    if param.minimum is not None and value < param.minimum:
        raise IssError(param.invalid, f"The value of `{path}` must be at least {param.minimum}.")
    if param.maximum is not None and value > param.maximum:
        raise IssError(param.invalid, f"The value of `{path}` must be at most {param.maximum}.")
    too_long = param.too_long or param.invalid
    if param.max_length is not None and len(value) > param.max_length:
        raise IssError(too_long, f"`{path}` is longer than {param.max_length}.")
    if param.max_bytes is not None and len(value.encode("utf-8")) > param.max_bytes:
        raise IssError(too_long, f"`{path}` is longer than {param.max_bytes} bytes.")
    if param.pattern is not None and not param.pattern.fullmatch(value):
        raise IssError(param.invalid, f"`{path}` contains characters that are not allowed.")
