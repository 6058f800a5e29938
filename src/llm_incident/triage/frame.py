"""The calls of one route around the onset, read once for attribution, blast radius and the
route's model and prompt mix (`CallFrame`).

`read_frame` reads `[start, end)` of a route in ONE statement (both backends) — per call its exact
time, flagged / error / retry / priced flags, error code, duration, tokens, cost and its dimension
values (env, model, provider, region, customer tier, prompt id and version) — as one row of arrays
(`json_group_array` / `group_concat` on SQLite, `array_agg` through a binary cursor on
PostgreSQL), so the parts that used to query the window each on their own (attribution's grouped
sums, blast radius's per-value samples, the route's models and prompt versions) cut it in numpy.

- Times are exact microseconds (SQLite: the stored text `YYYY-MM-DD HH:MM:SS.ffffff`, parsed in
  numpy; PostgreSQL: the epoch in double precision, exact to the microsecond at today's epochs),
  so a cut at the onset splits the calls as `ts >= onset` does in SQL.
- The dimension values travel as one key per call (each value prefixed by `PRESENT`, NULL as
  `MISSING`) and are numbered per distinct combination (`combo`, `combos`). A value holding one
  of those two characters would make the key ambiguous: `read_frame` then returns None and the
  callers query the database as before.
- SQLite renders a REAL with 15 significant digits: durations and costs are that close to the
  stored value (PostgreSQL: exact).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Float, case, cast, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from llm_incident.metrics.scope import C, IS_ERROR, IS_FLAGGED, event_conditions
from llm_incident.triage.arrays import binary_row

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)
DIMENSIONS = ("env", "model", "provider", "region", "customer_tier", "prompt_id",
              "prompt_version")
FLAGGED, ERROR, RETRY, PRICED = 1, 2, 4, 8
PRESENT, MISSING = "\x1f", "\x1e"
UNKNOWN_CODE = "unknown"
_FIELD = re.compile(f"{MISSING}|{PRESENT}[^{PRESENT}{MISSING}]*")
_SQLITE_TS = len("2026-11-26 08:00:00.000000")


def micros(moment: datetime) -> int:
    """`moment` (naive = UTC) as whole microseconds since the epoch."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - EPOCH) // MICROSECOND


def moment(us: int) -> datetime:
    """The aware UTC datetime of `us` microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=int(us))


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


def _key() -> ColumnElement[Any]:
    key = None
    for name in DIMENSIONS:
        part = func.coalesce(literal(PRESENT) + C[name], literal(MISSING))
        key = part if key is None else key + part
    return key


def _sqlite_columns() -> list[ColumnElement[Any]]:
    def numbers(column: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.group_concat(func.coalesce(column, literal("nan")), ",")
    return [
        func.count(), func.group_concat(C.ts, ""), func.group_concat(_flags(), ","),
        func.json_group_array(case((IS_ERROR, func.coalesce(C.error_code, UNKNOWN_CODE)))),
        numbers(C.duration_ms), numbers(C.tokens_in), numbers(C.tokens_out),
        numbers(C.cost_usd), func.json_group_array(_key()),
    ]


def _postgres_columns() -> list[ColumnElement[Any]]:
    def numbers(column: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.array_agg(func.coalesce(cast(column, Float), literal(float("nan"), Float)))
    epoch_us = cast(func.round(func.date_part("epoch", C.ts) * 1_000_000), BigInteger)
    return [
        func.count(), func.array_agg(epoch_us), func.array_agg(_flags()),
        func.array_agg(case((IS_ERROR, func.coalesce(C.error_code, UNKNOWN_CODE)))),
        numbers(C.duration_ms), numbers(C.tokens_in), numbers(C.tokens_out),
        numbers(C.cost_usd), func.array_agg(_key()),
    ]


def _sqlite_times(text: str, n: int) -> np.ndarray | None:
    """µs since the epoch from `n` concatenated `YYYY-MM-DD HH:MM:SS.ffffff` stamps."""
    if len(text) != n * _SQLITE_TS:
        return None
    digits = np.frombuffer(text.encode("ascii"), dtype=np.uint8).reshape(n, _SQLITE_TS)
    digits = digits.astype(np.int64) - ord("0")

    def number(first: int, stop: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.int64)
        for i in range(first, stop):
            out = out * 10 + digits[:, i]
        return out
    year, month, day = number(0, 4), number(5, 7), number(8, 10)
    # days from the civil date (proleptic Gregorian), as in H. Hinnant's algorithm
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    seconds = days * 86400 + number(11, 13) * 3600 + number(14, 16) * 60 + number(17, 19)
    return seconds * 1_000_000 + number(20, 26)


def _combos(keys: list[str]) -> tuple[np.ndarray, list[tuple[Any, ...]]] | None:
    index: dict[str, int] = {}
    combo = np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.int64,
                        count=len(keys))
    combos = []
    for key in index:
        parts = _FIELD.findall(key)
        if len(parts) != len(DIMENSIONS) or sum(map(len, parts)) != len(key):
            return None
        combos.append(tuple(None if p == MISSING else p[1:] for p in parts))
    return combo, combos


def read_frame(session: Session, route: str, start: datetime, end: datetime
               ) -> CallFrame | None:
    """The calls of `route` in `[start, end)` (see the module docstring); None when a dimension
    value holds a separator character (the callers then query as before)."""
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
        row = session.execute(statement).one()
        n = int(row[0])
        times = _sqlite_times(row[1] or "", n)
        if times is None:
            return None
        us = times
        flags = np.fromstring(row[2] or "", dtype=np.int64, sep=",")
        error_keys = json.loads(row[3]) if n else []
        numbers = [np.fromstring(c or "", dtype=float, sep=",") for c in row[4:8]]
        keys = json.loads(row[8]) if n else []
    found = _combos(keys)
    if found is None:
        return None
    combo, combos = found
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
