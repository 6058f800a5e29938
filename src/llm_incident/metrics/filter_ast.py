"""The checked syntax tree of an event filter, and its canonical text (`format_filter`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Union

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class FilterError(Exception):
    """A filter that cannot be used; `position` is the 1-based column the problem is at."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"column {position}: {message}")
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Relative:
    """`now`, `now - 30m` or `now + 1h`: resolved against the caller's `now` when compiled."""

    sign: int
    amount: float
    unit: str

    def resolve(self, now: datetime) -> datetime:
        return now + self.sign * timedelta(seconds=self.amount * UNIT_SECONDS[self.unit])

    def __str__(self) -> str:
        if self.amount == 0:
            return "now"
        amount = int(self.amount) if self.amount.is_integer() else self.amount
        return f"now {'-' if self.sign < 0 else '+'} {amount}{self.unit}"


Value = Union[str, int, float, bool, None, datetime, Relative]


@dataclass(frozen=True)
class Comparison:
    """`field op values`: `field` is an event column or "metadata" (then `path` holds the keys).

    `op` is one of = != > >= < <= contains in exists; `values` has one item, several for `in`,
    none for `exists`. Values are already coerced to the field's type (text fields hold strings,
    `ts` holds aware datetimes or `Relative`).
    """

    field: str
    path: tuple[str, ...]
    op: str
    values: tuple[Value, ...]
    pos: int = field(default=0, compare=False)

    @property
    def name(self) -> str:
        return ".".join((self.field, *self.path))


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


Node = Union[Comparison, Not, And, Or]


def format_value(value: Value) -> str:
    """A literal as filter text that parses back to the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Relative):
        return str(value)
    if isinstance(value, datetime):
        value = value.isoformat()
    return json.dumps(value, ensure_ascii=False)


def format_filter(node: Node) -> str:
    """Canonical filter text: keywords upper-case, strings double-quoted, explicit parentheses."""
    if isinstance(node, Comparison):
        if node.op == "exists":
            return f"{node.name} exists"
        if node.op == "in":
            return f"{node.name} in ({', '.join(format_value(v) for v in node.values)})"
        return f"{node.name} {node.op} {format_value(node.values[0])}"
    if isinstance(node, Not):
        return f"NOT {_wrapped(node.operand)}"
    joiner = " AND " if isinstance(node, And) else " OR "
    return joiner.join(_wrapped(item) for item in node.items)


def _wrapped(node: Node) -> str:
    text = format_filter(node)
    return f"({text})" if isinstance(node, (And, Or)) else text
