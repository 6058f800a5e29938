"""The fields a filter may name, their types, and the check that turns raw literals into values."""

from __future__ import annotations

import difflib
import math
from datetime import datetime, timezone

from llm_incident.metrics.filter_ast import UNIT_SECONDS, Comparison, FilterError, Relative, Value
from llm_incident.metrics.filter_syntax import RawValue, Token

# Event column -> kind: text, int, float, bool or time. `metadata.<key>` is kind json.
FIELDS: dict[str, str] = {
    "event_id": "text",
    "ts": "time",
    "route": "text",
    "env": "text",
    "model": "text",
    "provider": "text",
    "region": "text",
    "customer_tier": "text",
    "tokens_in": "int",
    "tokens_out": "int",
    "duration_ms": "float",
    "status": "text",
    "error_code": "text",
    "contains_banned": "bool",
    "cost_usd": "float",
    "priced": "bool",
    "prompt_id": "text",
    "prompt_version": "text",
    "attempt": "int",
    "input_excerpt": "text",
    "output_excerpt": "text",
}
FIELD_NAMES = (*FIELDS, "metadata.<key>")
ORDERING = (">", ">=", "<", "<=")
INT64 = 2**63 - 1
MAX_DURATION_SECONDS = 3650 * 86400

_KIND_WORDS = {
    "text": "text",
    "int": "a number",
    "float": "a number",
    "bool": "true/false",
    "time": "a time",
}


def resolve_field(token: Token) -> tuple[str, tuple[str, ...]]:
    """(column, metadata path) for a field token; FilterError naming the valid fields otherwise."""
    head, *path = token.value
    if head == "metadata":
        if not path:
            raise FilterError("metadata needs a key: metadata.<key>, e.g. metadata.user_id",
                              token.pos)
        return "metadata", tuple(path)
    if head in FIELDS and not path:
        return head, ()
    close = difflib.get_close_matches(token.text, FIELD_NAMES, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise FilterError(
        f"unknown field '{token.text}'; {hint}valid fields: {', '.join(FIELD_NAMES)}", token.pos
    )


def check_comparison(field: Token, op: Token, raw: list[RawValue]) -> Comparison:
    """The typed comparison for `field op values`, or a FilterError pointing at the culprit."""
    column, path = resolve_field(field)
    kind = "json" if column == "metadata" else FIELDS[column]
    operator = op.text.lower() if op.kind == "word" else op.text
    name = field.text
    if operator == "contains" and kind not in ("text", "json"):
        raise FilterError(f"contains only works on text fields and metadata, not on {name}",
                          op.pos)
    values = tuple(_check_value(name, kind, operator, value) for value in raw)
    return Comparison(column, path, operator, values, field.pos)


def _check_value(name: str, kind: str, operator: str, raw: RawValue) -> Value:
    eq = "=" if operator == "in" else operator
    if raw.kind == "null":
        if eq not in ("=", "!="):
            raise FilterError(f"null only works with = and != (or use '{name} exists')", raw.pos)
        return None
    if raw.kind == "now":
        return _relative(name, kind, raw)
    if eq in ORDERING and kind in ("text", "bool"):
        allowed = "=, !=, in, contains or exists" if kind == "text" else "=, != or in"
        raise FilterError(f"{name} is {_KIND_WORDS[kind]}, so '{eq}' does not apply to "
                          f"{raw.text} (use {allowed})", raw.pos)
    if raw.kind == "number":
        _check_number(raw)
    if eq == "contains":
        if raw.kind == "string" or (kind == "text" and raw.kind == "number"):
            return raw.value if raw.kind == "string" else raw.text
        raise FilterError(f"contains needs text in quotes, found {raw.text}", raw.pos)
    if kind == "json":
        if eq in ORDERING and raw.kind != "number":
            raise FilterError(f"'{eq}' on {name} needs a number, found {raw.text}", raw.pos)
        return raw.value
    if kind == "text":
        if raw.kind == "string":
            return raw.value
        if raw.kind == "number":
            return raw.text  # error_code = 429 matches the stored text "429"
        raise FilterError(f"{name} is text; expected a quoted string, found {raw.text}", raw.pos)
    if kind in ("int", "float"):
        if raw.kind == "number":
            return raw.value
        hint = "; remove the quotes" if raw.kind == "string" and _is_number(raw.value) else ""
        raise FilterError(f"{name} is a number; expected a number, found {raw.text}{hint}",
                          raw.pos)
    if kind == "bool":
        if raw.kind == "bool":
            return raw.value
        raise FilterError(f"{name} is true/false; expected true or false, found {raw.text}",
                          raw.pos)
    return _timestamp(name, raw)


def _check_number(raw: RawValue) -> None:
    value = raw.value
    if isinstance(value, float) and not math.isfinite(value) or (
        isinstance(value, int) and abs(value) > INT64
    ):
        raise FilterError(f"number {raw.text} is out of range", raw.pos)


def _relative(name: str, kind: str, raw: RawValue) -> Relative:
    if kind != "time":
        raise FilterError(f"'now' only works with ts, not with {name}", raw.pos)
    sign, amount, unit = raw.value
    if not amount * UNIT_SECONDS[unit] <= MAX_DURATION_SECONDS:
        raise FilterError(f"duration in {raw.text} is longer than 10 years", raw.pos)
    return Relative(sign, amount, unit) if amount else Relative(1, 0.0, "s")


def _timestamp(name: str, raw: RawValue) -> datetime:
    example = 'e.g. "2026-11-26T14:00:00Z" or now - 30m'
    if raw.kind != "string":
        raise FilterError(f"{name} is a time; expected an RFC 3339 timestamp in quotes "
                          f"({example}), found {raw.text}", raw.pos)
    try:
        value = datetime.fromisoformat(raw.value.strip())
    except ValueError:
        raise FilterError(f"{raw.text} is not an RFC 3339 timestamp ({example})",
                          raw.pos) from None
    if value.utcoffset() is None:
        raise FilterError(f"timestamp {raw.text} needs a UTC offset, e.g. Z or +02:00", raw.pos)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise FilterError(f"timestamp {raw.text} is out of range", raw.pos) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
