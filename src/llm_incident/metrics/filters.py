r"""The event filter language: `parse_filter(text)` → checked AST, `compile_filter` → SQL WHERE.

Used by event search, `sample`, alerts and the dashboard. Example::

    status = "flagged" OR contains_banned = true
        OR tokens_out > 2000 AND metadata.route = "support.reply"

Grammar (EBNF; keywords are case-insensitive, field names are not)::

    filter     = or_expr
    or_expr    = and_expr { "OR" and_expr }
    and_expr   = not_expr { "AND" not_expr }
    not_expr   = "NOT" not_expr | primary
    primary    = "(" or_expr ")" | comparison
    comparison = field ( op value | "contains" value | "in" "(" value { "," value } ")" | "exists" )
    op         = "=" | "!=" | ">" | ">=" | "<" | "<="
    field      = column | "metadata" "." key { "." key }         (no spaces inside a field)
    key        = letters, digits, "_" or "-"
    value      = string | number | "true" | "false" | "null" | "now" [ ( "-" | "+" ) duration ]
    string     = '"' chars '"' | "'" chars "'"     escapes: \\ \" \' \n \t \r \b \f \uXXXX
    number     = [ "-" ] digits [ "." digits ] [ ( "e" | "E" ) [ "+" | "-" ] digits ]
    duration   = digits [ "." digits ] ( "s" | "m" | "h" | "d" | "w" )     e.g. 30m, 1.5h, 7d

Precedence: NOT binds tightest, then AND, then OR — `a OR b AND NOT c` means `a OR (b AND (NOT c))`.
Use parentheses to group otherwise.

Columns: event_id, ts, route, env, model, provider, region, customer_tier, tokens_in, tokens_out,
duration_ms, status, error_code, contains_banned, cost_usd, priced, prompt_id, prompt_version,
attempt, input_excerpt, output_excerpt; plus `metadata.<key>[.<key>…]` for the event's metadata.

Meaning:
- Every comparison is true or false, never unknown: a missing value (SQL NULL, a metadata key that
  is absent or of another JSON type) satisfies no comparison except `= null`. `!=` is exactly
  `NOT (… = …)`, so `model != "gpt-4o"` also matches events without a model, and `NOT` always
  yields the complement.
- Types are checked against the field: numbers for tokens_*, duration_ms, cost_usd, attempt;
  true/false for contains_banned, priced; text fields take quoted strings, and numbers there are
  compared as the text written (`error_code = 429` matches the stored "429"). Text and booleans
  have no order (`>` etc. are errors: the backends' collations differ).
- `ts` takes RFC 3339 strings with a UTC offset (`ts >= "2026-11-26T14:00:00Z"`) or relative
  times `now`, `now - 30m`, `now + 1h`, resolved against the `now` given to `compile_filter`.
- `metadata.<key>` compares by the literal's type: a string matches JSON strings, a number JSON
  numbers (numerically, 5 = 5.0), true/false JSON booleans; `>` `>=` `<` `<=` need a number.
  Keys address nested objects (`metadata.user.plan`), not array elements.
- `contains` is a case-insensitive substring test (ASCII case folding on SQLite); `%`, `_` and
  `/` in the value are literal characters.
- `in (a, b, …)` is `= a OR = b …` (null allowed in the list). `exists` is "is not null" for
  columns and "the key is present" (even holding JSON null) for metadata. `= null` is IS NULL
  (metadata: key absent or JSON null); `!= null` is IS NOT NULL.

Limits: 4000 characters, 50 levels of nested parentheses / NOT. Errors are FilterError with a
1-based `.position`; `str(err)` reads `column 14: expected a value after '>'`.
Values always travel as bound parameters; no user text is ever rendered into SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, and_, false, func, literal, not_, or_
from sqlalchemy.sql.elements import ColumnElement

from llm_incident.events.models import Event
from llm_incident.metrics.filter_ast import (
    And, Comparison, FilterError, Node, Not, Or, Relative, Value, format_filter,
)
from llm_incident.metrics.filter_fields import FIELD_NAMES, FIELDS, check_comparison
from llm_incident.metrics.filter_syntax import Parser
from llm_incident.metrics.json_sql import json_not_null, json_present, json_scalar

__all__ = [
    "FIELDS", "FIELD_NAMES", "MAX_FILTER_CHARS", "FilterError", "Node", "compile_filter",
    "format_filter", "parse_filter",
]

MAX_FILTER_CHARS = 4000
_TABLE = Event.__table__
_COMPARE = {
    "=": lambda a, b: a == b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def parse_filter(text: str) -> Node:
    """The checked AST of `text`; FilterError (with `.position`) when it is not a valid filter."""
    if len(text) > MAX_FILTER_CHARS:
        raise FilterError(f"filter is longer than {MAX_FILTER_CHARS} characters",
                          MAX_FILTER_CHARS + 1)
    return Parser(text, check_comparison).parse()


def compile_filter(source: str | Node, *, now: datetime) -> ColumnElement[bool]:
    """A boolean SQLAlchemy expression over the `events` table; relative times resolve to `now`."""
    node = parse_filter(source) if isinstance(source, str) else source
    return _compile(node, now)


def _compile(node: Node, now: datetime) -> ColumnElement[bool]:
    if isinstance(node, Comparison):
        return _comparison(node, now)
    if isinstance(node, Not):
        return not_(_compile(node.operand, now))
    if isinstance(node, And):
        return and_(*(_compile(item, now) for item in node.items))
    if isinstance(node, Or):
        return or_(*(_compile(item, now) for item in node.items))
    raise TypeError(f"not a filter node: {node!r}")


def _comparison(node: Comparison, now: datetime) -> ColumnElement[bool]:
    op, values = node.op, node.values
    match_one = _metadata_match if node.field == "metadata" else _column_match
    if op == "exists":
        return match_one(node, "exists", None, now)
    if op == "in":
        return or_(*(match_one(node, "=", value, now) for value in values))
    if op == "!=":
        if values[0] is None:
            return match_one(node, "exists_value", None, now)
        return not_(match_one(node, "=", values[0], now))
    return match_one(node, op, values[0], now)


def _column_match(node: Comparison, op: str, value: Value, now: datetime) -> ColumnElement[bool]:
    column = _TABLE.c[node.field]
    if op in ("exists", "exists_value"):
        return column.is_not(None)
    if value is None:
        return column.is_(None)
    if op == "contains":
        expr = column.icontains(value, autoescape=True)
    else:
        expr = _COMPARE[op](column, _bound(value, now))
    return and_(column.is_not(None), expr) if column.nullable else expr


def _metadata_match(node: Comparison, op: str, value: Value, now: datetime) -> ColumnElement[bool]:
    path = node.path
    if op == "exists":
        return json_present(path)
    if op == "exists_value":
        return json_not_null(path)
    if value is None:
        return not_(json_not_null(path))
    if op == "contains":
        expr = json_scalar(path, "text").icontains(value, autoescape=True)
    elif isinstance(value, bool):
        expr = json_scalar(path, "bool") == value
    elif isinstance(value, (int, float)):
        expr = _COMPARE[op](json_scalar(path, "number"), _bound(value, now))
    else:
        expr = json_scalar(path, "text") == value
    return func.coalesce(expr, false())


def _bound(value: Value, now: datetime) -> Any:
    """Numbers get an explicit SQL type, so 1.5 is never cast to an integer column's type."""
    if isinstance(value, Relative):
        return value.resolve(now)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return literal(value, Float() if isinstance(value, float) else BigInteger())
