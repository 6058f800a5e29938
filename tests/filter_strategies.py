"""Test helpers for the filter language: a generator of valid filter texts and a Python reference
evaluator implementing the documented semantics (see `llm_incident.metrics.filters`)."""

from __future__ import annotations

import operator
from datetime import datetime
from typing import Any

from hypothesis import strategies as st

from llm_incident.metrics.filter_ast import And, Comparison, Node, Not, Or, Relative

STRINGS = ["x", "X", "50%_off", "%", "_", "/", "pro", "support.reply", "a%b_c", "gpt-4o", "GPT",
           "429", "2.10", "", "x' OR 1=1 --", "ok", "flagged", "error", "prod", "eu-west"]
NUMBERS = [0, 1, 2, 2.5, -3, 5, 150, 2000, 10**15, 850.0, 0.5]
TIMES = ["now - 30m", "now - 1h", "now - 2.5h", "now", "now + 1d", '"2026-11-26T14:00:00Z"',
         "'2026-11-26T13:30:00+01:00'"]
TEXT_FIELDS = ["route", "model", "env", "status", "error_code", "region", "prompt_version"]
NUMBER_FIELDS = ["tokens_out", "tokens_in", "duration_ms", "cost_usd", "attempt"]
BOOL_FIELDS = ["contains_banned", "priced"]
META_KEYS = ["k", "n", "flag", "user.plan", "null", "missing"]


def _quoted(text: str) -> st.SearchStrategy[str]:
    escaped = text.replace("\\", "\\\\")
    return st.sampled_from([
        '"' + escaped.replace('"', '\\"') + '"', "'" + escaped.replace("'", "\\'") + "'",
    ])


def _number(value: float) -> str:
    return repr(value)


def _kw(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word.lower(), word.upper(), word.capitalize()])


@st.composite
def _value_list(draw: Any, values: st.SearchStrategy[str]) -> str:
    items = draw(st.lists(values, min_size=1, max_size=4))
    return "(" + ", ".join(items) + ")"


@st.composite
def comparisons(draw: Any) -> str:
    """One valid comparison over the test fields, written in a random but legal style."""
    strings = st.sampled_from(STRINGS).flatmap(_quoted)
    numbers = st.sampled_from(NUMBERS).map(_number)
    bools = st.sampled_from(["true", "false"]).flatmap(_kw)
    null = _kw("null")
    kind = draw(st.sampled_from(["text", "number", "bool", "time", "meta"]))
    if kind == "time":
        return f"ts {draw(st.sampled_from(['>', '>=', '<', '<=', '=', '!=']))} " \
               f"{draw(st.sampled_from(TIMES))}"
    field = {
        "text": st.sampled_from(TEXT_FIELDS), "number": st.sampled_from(NUMBER_FIELDS),
        "bool": st.sampled_from(BOOL_FIELDS), "meta": st.sampled_from(META_KEYS).map(
            lambda key: "metadata." + key),
    }[kind]
    name = draw(field)
    equal_values = {
        "text": st.one_of(strings, numbers), "number": numbers, "bool": bools,
        "meta": st.one_of(strings, numbers, bools, null),
    }[kind]
    choices = [
        st.tuples(st.sampled_from(["=", "!="]), st.one_of(equal_values, null)),
        st.tuples(_kw("in"), _value_list(st.one_of(equal_values, null))),
        st.tuples(_kw("exists"), st.just("")),
    ]
    if kind in ("number", "meta"):
        choices.append(st.tuples(st.sampled_from([">", ">=", "<", "<="]), numbers))
    if kind in ("text", "meta"):
        choices.append(st.tuples(_kw("contains"), strings))
    op, value = draw(st.one_of(choices))
    return f"{name} {op} {value}".rstrip()


def _join(word: str) -> Any:
    return lambda parts: st.tuples(_kw(word), st.just(parts)).map(
        lambda pair: f" {pair[0]} ".join(pair[1]))


def filters() -> st.SearchStrategy[str]:
    """Valid filter texts: comparisons combined with AND / OR / NOT and parentheses."""
    return st.recursive(
        comparisons(),
        lambda inner: st.one_of(
            st.lists(inner, min_size=2, max_size=3).flatmap(_join("and")),
            st.lists(inner, min_size=2, max_size=3).flatmap(_join("or")),
            st.tuples(_kw("not"), inner).map(lambda pair: f"{pair[0]} {pair[1]}"),
            inner.map(lambda text: f"({text})"),
        ),
        max_leaves=6,
    )


# ------------------------------------------------------------------------- reference semantics

_MISSING = object()
_ORDER = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def _ascii_lower(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def _lookup(event: Any, node: Comparison) -> Any:
    if node.field != "metadata":
        return getattr(event, node.field)
    value: Any = event.meta
    for key in node.path:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "text" if isinstance(value, str) else "other"


def _equal(node: Comparison, actual: Any, expected: Any, now: datetime) -> bool:
    if isinstance(expected, Relative):
        expected = expected.resolve(now)
    if expected is None:
        return actual is None or actual is _MISSING
    if node.field == "metadata" and _json_kind(actual) != _json_kind(expected):
        return False
    return actual is not None and actual == expected


def reference_match(node: Node, event: Any, now: datetime) -> bool:
    """Whether `event` (an Event row) satisfies `node`, per the documented semantics."""
    if isinstance(node, Not):
        return not reference_match(node.operand, event, now)
    if isinstance(node, And):
        return all(reference_match(item, event, now) for item in node.items)
    if isinstance(node, Or):
        return any(reference_match(item, event, now) for item in node.items)
    actual = _lookup(event, node)
    op, values = node.op, node.values
    if op == "exists":
        return actual is not _MISSING and (node.field == "metadata" or actual is not None)
    if op == "in":
        return any(_equal(node, actual, value, now) for value in values)
    if op == "=":
        return _equal(node, actual, values[0], now)
    if op == "!=":
        return not _equal(node, actual, values[0], now)
    if op == "contains":
        return isinstance(actual, str) and _ascii_lower(values[0]) in _ascii_lower(actual)
    expected = values[0].resolve(now) if isinstance(values[0], Relative) else values[0]
    if actual is None or actual is _MISSING:
        return False
    if node.field == "metadata" and _json_kind(actual) != "number":
        return False
    return _ORDER[op](actual, expected)
