"""Typed access to `events.metadata` keys, the same on SQLite (JSON) and PostgreSQL (JSONB).

`json_scalar(path, kind)` is the value at `path` as SQL text / number / boolean, or NULL when the
key is missing or holds another JSON type (so "5" never equals 5, and PostgreSQL never tries to
cast "abc" to a number). `json_present(path)` / `json_not_null(path)` test for the key. Paths are
bound parameters (`$."a"."b"` on SQLite, a `text[]` on PostgreSQL); nothing user-written is
rendered into SQL text.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ARRAY, Boolean, Float, Numeric, String, Text, bindparam, case, cast, func, literal, or_,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from llm_incident.events.models import Event

_DOCUMENT = Event.__table__.c.metadata

# JSON type names as each backend reports them (sqlite: json_type, postgresql: jsonb_typeof).
_TYPE_NAMES = {
    "sqlite": {"text": ("text",), "number": ("integer", "real"), "bool": ("true", "false")},
    "postgresql": {"text": ("string",), "number": ("number",), "bool": ("boolean",)},
}
# NUMERIC, not float: exact against integers, and never overflows on a huge JSON number.
_PG_CASTS: dict[str, TypeEngine[Any]] = {"number": Numeric(), "bool": Boolean()}


class MetadataPath(TypeDecorator[tuple[str, ...]]):
    """A tuple of object keys, bound as a SQLite JSON path or a PostgreSQL `text[]`."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(Text()))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: tuple[str, ...] | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return list(value)
        # Keys are limited to letters, digits, "_" and "-" by the filter lexer.
        return "$" + "".join(f'."{key}"' for key in value)


class _JsonExpr(FunctionElement[Any]):
    """Base for expressions over the metadata value at a path; `kind` picks the SQL shape."""

    inherit_cache = True
    kind = ""

    def __init__(self, path: tuple[str, ...]) -> None:
        super().__init__(_DOCUMENT, bindparam(None, tuple(path), type_=MetadataPath()))


class _TextScalar(_JsonExpr):
    type = String()
    kind = "text"
    inherit_cache = True


class _NumberScalar(_JsonExpr):
    type = Float()
    kind = "number"
    inherit_cache = True


class _BoolScalar(_JsonExpr):
    type = Boolean()
    kind = "bool"
    inherit_cache = True


class _Present(_JsonExpr):
    """True when the key exists, even holding JSON null."""

    type = Boolean()
    kind = "present"
    inherit_cache = True


class _NotNull(_JsonExpr):
    """True when the key exists and holds something other than JSON null."""

    type = Boolean()
    kind = "not_null"
    inherit_cache = True


_SCALARS: dict[str, type[_JsonExpr]] = {
    "text": _TextScalar, "number": _NumberScalar, "bool": _BoolScalar,
}


def json_scalar(path: tuple[str, ...], kind: str) -> ColumnElement[Any]:
    """The metadata value at `path` if it is a JSON `kind` (text, number, bool), else NULL."""
    return _SCALARS[kind](path)


def json_present(path: tuple[str, ...]) -> ColumnElement[bool]:
    return _Present(path)


def json_not_null(path: tuple[str, ...]) -> ColumnElement[bool]:
    return _NotNull(path)


def _parts(element: _JsonExpr) -> tuple[Any, Any]:
    document, path = element.clauses
    return document, path


@compiles(_JsonExpr, "sqlite")
@compiles(_JsonExpr)
def _compile_sqlite(element: _JsonExpr, compiler: Any, **kw: Any) -> str:
    document, path = _parts(element)
    json_type = func.json_type(document, path)
    if element.kind == "present":
        expr: ColumnElement[Any] = json_type.is_not(None)
    elif element.kind == "not_null":
        expr = func.coalesce(json_type, literal("null")) != literal("null")
    else:
        is_kind = or_(*(json_type == literal(name) for name in _TYPE_NAMES["sqlite"][element.kind]))
        expr = case((is_kind, func.json_extract(document, path)))
    return f"({compiler.process(expr, **kw)})"  # one operand, whatever surrounds it


@compiles(_JsonExpr, "postgresql")
def _compile_postgresql(element: _JsonExpr, compiler: Any, **kw: Any) -> str:
    document, path = _parts(element)
    node = document.op("#>")(path)
    json_type = func.jsonb_typeof(node)
    if element.kind == "present":
        expr: ColumnElement[Any] = node.is_not(None)
    elif element.kind == "not_null":
        expr = func.coalesce(json_type, literal("null")) != literal("null")
    else:
        (name,) = _TYPE_NAMES["postgresql"][element.kind]
        text_value = document.op("#>>", return_type=Text())(path)
        value = text_value
        if element.kind in _PG_CASTS:
            value = cast(text_value, _PG_CASTS[element.kind])
        expr = case((json_type == literal(name), value))
    return f"({compiler.process(expr, **kw)})"  # one operand, whatever surrounds it
