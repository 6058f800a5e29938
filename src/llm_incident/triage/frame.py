"""The calls of one route around the onset, read once for attribution, blast radius and the
route's model and prompt mix (`CallFrame`).

`read_frame` reads `[start, end)` of a route in ONE statement (both backends) — per call its exact
time, flagged / error / retry / priced flags, error code, duration, tokens, cost and its dimension
values (env, model, provider, region, customer tier, prompt id and version) — as one row of arrays
(`json_group_array` / `group_concat` on SQLite, `array_agg` through a binary cursor on
PostgreSQL), so the parts that used to query the window each on their own (attribution's grouped
sums, blast radius's per-value samples, the route's models and prompt versions) cut it in numpy.

- Times are exact microseconds (SQLite: the stored text, `YYYY-MM-DD HH:MM:SS.ffffff`, parsed in
  numpy; PostgreSQL: the epoch in double precision, exact to the microsecond at today's epochs),
  so a cut at the onset splits the calls as `ts >= onset` does in SQL.
- The dimension values travel as one key per call, their JSON array (`json_array` /
  `json_build_array`: any value, NULL included, unambiguous; no raw newline, so SQLite's keys are
  joined by newlines), numbered per distinct combination (`combo`, `combos`): only the distinct
  keys are decoded.
- SQLite renders a REAL with 15 significant digits: durations and costs are that close to the
  stored value (PostgreSQL: exact).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Float, Text, case, cast, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from llm_incident.metrics.percentiles import raw_rows
from llm_incident.metrics.scope import C, IS_ERROR, IS_FLAGGED, event_conditions
from llm_incident.triage.arrays import binary_row
from llm_incident.triage.series import integers
from llm_incident.triage.times import micros, sqlite_times

DIMENSIONS = ("env", "model", "provider", "region", "customer_tier", "prompt_id",
              "prompt_version")
FLAGGED, ERROR, RETRY, PRICED = 1, 2, 4, 8
UNKNOWN_CODE = "unknown"


@dataclass
class CallFrame:
    """Per-call arrays of one route over `[start, end)`, sorted by time.

    `us`: exact time (µs since the epoch); `flags`: FLAGGED | ERROR | RETRY | PRICED bits;
    `error_keys`: the error code of each error call ("unknown" without one; None for the
    others); `values`: duration_ms, tokens_in, tokens_out, cost_usd (NaN = NULL); `combo`: the
    index in `combos` of the call's dimension values (a tuple in DIMENSIONS order)."""

    route: str
    start: datetime
    end: datetime
    us: np.ndarray
    flags: np.ndarray
    error_keys: np.ndarray
    values: dict[str, np.ndarray]
    combo: np.ndarray
    combos: list[tuple[Any, ...]]
    _by_dim: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.us.size)

    def covers(self, start: datetime, end: datetime) -> bool:
        return self.start <= start and end <= self.end

    def between(self, start: datetime, end: datetime) -> slice:
        """The calls of `[start, end)` (a slice: the frame is sorted by time)."""
        lo, hi = np.searchsorted(self.us, [micros(start), micros(end)], side="left")
        return slice(int(lo), int(hi))

    def flag(self, bit: int) -> np.ndarray:
        return (self.flags & bit) != 0

    def dimension(self, name: str) -> np.ndarray:
        """Each call's value of dimension `name` (object array; None = NULL)."""
        if name not in self._by_dim:
            i = DIMENSIONS.index(name)
            per_combo = np.empty(len(self.combos), dtype=object)
            per_combo[:] = [combo[i] for combo in self.combos]
            self._by_dim[name] = per_combo[self.combo] if self.combos else per_combo[:0]
        return self._by_dim[name]


def _flags() -> ColumnElement[Any]:
    def one(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return case((condition, 1), else_=0)
    return (one(IS_FLAGGED) + ERROR * one(IS_ERROR) + RETRY * one(C.attempt > 1)
            + PRICED * one(C.priced))


def _key(dialect: str) -> ColumnElement[Any]:
    build = func.json_build_array if dialect == "postgresql" else func.json_array
    key = build(*(C[name] for name in DIMENSIONS))
    return cast(key, Text) if dialect == "postgresql" else key


def _sqlite_columns() -> list[ColumnElement[Any]]:
    def numbers(column: ColumnElement[Any], null: Any) -> ColumnElement[Any]:
        return func.group_concat(func.coalesce(column, literal(null)), ",", type_=Text)
    return [
        func.count(), func.group_concat(C.ts, "\n", type_=Text),
        func.group_concat(_flags(), ",", type_=Text),
        func.json_group_array(case((IS_ERROR, func.coalesce(C.error_code, UNKNOWN_CODE)))),
        numbers(C.duration_ms, "nan"), func.json_group_array(C.tokens_in),
        func.json_group_array(C.tokens_out), numbers(C.cost_usd, "nan"),
        func.group_concat(_key("sqlite"), "\n", type_=Text),
    ]


def _postgres_columns() -> list[ColumnElement[Any]]:
    def numbers(column: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.array_agg(func.coalesce(cast(column, Float), literal(float("nan"), Float)))
    epoch_us = cast(func.round(func.date_part("epoch", C.ts) * 1_000_000), BigInteger)
    return [
        func.count(), func.array_agg(epoch_us), func.array_agg(_flags()),
        func.array_agg(case((IS_ERROR, func.coalesce(C.error_code, UNKNOWN_CODE)))),
        numbers(C.duration_ms), numbers(C.tokens_in), numbers(C.tokens_out),
        numbers(C.cost_usd), func.array_agg(_key("postgresql")),
    ]


def _combos(keys: list[str]) -> tuple[np.ndarray, list[tuple[Any, ...]]]:
    index: dict[str, int] = {}
    combo = np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.int64,
                        count=len(keys))
    return combo, [tuple(json.loads(key)) for key in index]


def read_frame(session: Session, route: str, start: datetime, end: datetime) -> CallFrame:
    """The calls of `route` in `[start, end)` (see the module docstring)."""
    dialect = session.get_bind().dialect.name
    postgres = dialect == "postgresql"
    columns = _postgres_columns() if postgres else _sqlite_columns()
    statement = select(*columns).where(*event_conditions(route, start, end))
    if postgres:
        row = binary_row(session, statement)
        n = int(row[0])
        us = np.asarray(row[1] if n else [], dtype=np.int64)
        flags = np.asarray(row[2] if n else [], dtype=np.int64)
        error_keys = list(row[3] or [])
        numbers = [np.asarray(c if n else [], dtype=float) for c in row[4:8]]
        keys = list(row[8] or [])
    else:
        (row,) = raw_rows(session, statement)
        n = int(row[0])
        us = sqlite_times(row[1] or "", n)
        flags = np.fromstring(row[2] or "", dtype=np.int64, sep=",")
        error_keys = json.loads(row[3]) if n else []
        numbers = [np.fromstring(row[4] or "", dtype=float, sep=","), integers(row[5]),
                   integers(row[6]), np.fromstring(row[7] or "", dtype=float, sep=",")]
        keys = row[8].split("\n") if n else []
    combo, combos = _combos(keys)
    order = np.argsort(us, kind="stable")
    errors = np.empty(n, dtype=object)
    errors[:] = error_keys
    return CallFrame(
        route=route, start=start, end=end, us=us[order], flags=flags[order],
        error_keys=errors[order],
        values={name: column[order] for name, column in zip(
            ("duration_ms", "tokens_in", "tokens_out", "cost_usd"), numbers, strict=True)},
        combo=combo[order], combos=combos,
    )
