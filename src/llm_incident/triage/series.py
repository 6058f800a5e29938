"""Per-minute series of one route: the raw per-call samples of a window, bucketed by UTC minute.

`minute_series` reads the window's events in ONE statement (both backends) — per call its time,
flagged / error / retry flags, error code, duration, tokens and priced cost, fetched as one row
(SQLite: `json_group_array` text parsed by numpy; PostgreSQL: `array_agg` arrays loaded as
numpy, `triage.arrays`) — and keeps them as numpy columns sorted by
minute, so a stat can be read per minute (`values`) or over any
run of whole minutes (`value`, `samples`, the raw values a rank test compares).

Stat names and their meaning (the same conventions as `metrics.stats`):

- `flagged_rate`, `error_rate`, `retry_share`: shares of calls (samples are 0/1 per call);
  flagged = status "flagged" or contains_banned, error = status "error" or an error code
  (`metrics.scope.IS_FLAGGED` / `IS_ERROR`), retry = attempt > 1.
- `error_code_rate:<code>`: share of calls that are errors with that code ("unknown" = an error
  without a code), as `WindowStats.error_codes` counts them.
- `p95_duration_ms`, `p95_tokens_out`: nearest-rank p95 (`metrics.percentiles`) of the calls that
  reported the column; `avg_tokens_in`: their mean.
- `cost_per_call_usd`: cost of the priced calls / priced calls (samples: one per priced call).
- `calls_per_min`: calls per minute (samples: one count per minute, empty minutes included).

Minutes are aligned to the UTC minute: the window is widened to whole minutes (`start` floored,
`end` rounded up); a time inside the window maps to the minute that holds it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import (BigInteger, Float, Integer, Select, case, cast, func, literal,
                        literal_column, select)
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from llm_incident.metrics.percentiles import nearest_rank
from llm_incident.metrics.scope import C, IS_ERROR, IS_FLAGGED, Scope, WindowQuery
from llm_incident.metrics.sql_time import epoch_seconds
from llm_incident.triage.arrays import binary_row

MINUTE = timedelta(minutes=1)
UNKNOWN_CODE = "unknown"
ERROR_CODE_PREFIX = "error_code_rate:"
RATE_COLUMNS = {"flagged_rate": "flagged", "error_rate": "error", "retry_share": "retry"}
# stat -> (column, how the samples aggregate)
VALUE_COLUMNS = {
    "p95_duration_ms": ("duration_ms", "p95"),
    "p95_tokens_out": ("tokens_out", "p95"),
    "avg_tokens_in": ("tokens_in", "mean"),
    "cost_per_call_usd": ("cost_usd", "mean"),
}
CALLS_PER_MIN = "calls_per_min"
# One row per call, as minute_series reads it.
ROW_FIELDS = ("epoch_s", "flagged", "error", "error_key", "retry", "duration_ms", "tokens_in",
              "tokens_out", "cost_usd")


def floor_minute(value: datetime) -> datetime:
    """`value` as an aware UTC datetime truncated to its minute (naive = UTC)."""
    value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(
        timezone.utc)
    return value.replace(second=0, microsecond=0)


def ceil_minute(value: datetime) -> datetime:
    """`value` rounded up to a whole UTC minute (unchanged when it is one)."""
    floored = floor_minute(value)
    return floored if value.second == 0 and value.microsecond == 0 else floored + MINUTE


def is_rate(stat: str) -> bool:
    """True for the stats that are shares of calls (samples 0/1)."""
    return stat in RATE_COLUMNS or stat.startswith(ERROR_CODE_PREFIX)


def _known(stat: str) -> None:
    if not (is_rate(stat) or stat in VALUE_COLUMNS or stat == CALLS_PER_MIN):
        raise ValueError(f"unknown stat {stat!r}")


def aggregate(stat: str, samples: np.ndarray) -> float | None:
    """The stat over a run of its samples (None when there are none)."""
    if samples.size == 0:
        return None
    if stat in VALUE_COLUMNS and VALUE_COLUMNS[stat][1] == "p95":
        k = nearest_rank(95.0, samples.size) - 1
        return float(np.partition(samples, k)[k])
    return float(samples.mean())


@dataclass
class MinuteSeries:
    """Per-minute aggregates of one route over `[start, end)`; keeps every call's raw values.

    `minute_of[i]` is the minute index (0 = `start`) of call i; calls are sorted by minute and
    `bounds[m]:bounds[m + 1]` are the calls of minute m. `columns` hold one value per call (NaN =
    NULL): flagged, error, retry (0/1), duration_ms, tokens_in, tokens_out, cost_usd (NaN unless
    priced); `error_keys` the error code of each error call (None for the others).
    """

    route: str
    start: datetime
    end: datetime
    minutes: list[datetime]
    minute_of: np.ndarray
    bounds: np.ndarray
    columns: dict[str, np.ndarray]
    error_keys: np.ndarray
    _cache: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def counts(self) -> np.ndarray:
        """Calls per minute."""
        return np.diff(self.bounds)

    @property
    def error_codes(self) -> dict[str, int]:
        """Errors per code over the whole window, most frequent first."""
        counted = Counter(code for code in self.error_keys.tolist() if code is not None)
        return dict(sorted(counted.items(), key=lambda kv: (-kv[1], kv[0])))

    def index(self, moment: datetime) -> int:
        """The index of the minute holding `moment`, clipped to 0..len(minutes)."""
        offset = (floor_minute(moment) - self.start) // MINUTE
        return int(min(max(offset, 0), len(self.minutes)))

    def observations(self, stat: str) -> tuple[np.ndarray, np.ndarray]:
        """(samples, minute index of each) over the whole window, in minute order."""
        if stat not in self._cache:
            self._cache[stat] = self._observations(stat)
        return self._cache[stat]

    def _observations(self, stat: str) -> tuple[np.ndarray, np.ndarray]:
        _known(stat)
        if stat == CALLS_PER_MIN:
            return self.counts.astype(float), np.arange(len(self.minutes))
        if stat.startswith(ERROR_CODE_PREFIX):
            code = stat[len(ERROR_CODE_PREFIX):]
            return (self.error_keys == code).astype(float), self.minute_of
        if stat in RATE_COLUMNS:
            return self.columns[RATE_COLUMNS[stat]], self.minute_of
        column = self.columns[VALUE_COLUMNS[stat][0]]
        present = ~np.isnan(column)
        return column[present], self.minute_of[present]

    def sample_array(self, stat: str, first: int, stop: int) -> np.ndarray:
        """The raw samples of minutes `first .. stop - 1` (numpy)."""
        values, minute = self.observations(stat)
        lo, hi = np.searchsorted(minute, [first, stop], side="left")
        return values[lo:hi]

    def samples(self, stat: str, start: datetime, end: datetime) -> list[float]:
        """Raw per-call samples of `stat` over the minutes of `[start, end)` (0/1 for rates; one
        count per minute for calls_per_min)."""
        return self.sample_array(stat, self.index(start), self.index(end)).tolist()

    def calls(self, start: datetime, end: datetime) -> int:
        return int(self.bounds[self.index(end)] - self.bounds[self.index(start)])

    def value(self, stat: str, start: datetime, end: datetime) -> float | None:
        """The stat over the minutes of `[start, end)` (None when undefined there)."""
        first, stop = self.index(start), self.index(end)
        if stat == CALLS_PER_MIN:
            return self.calls(start, end) / (stop - first) if stop > first else None
        return aggregate(stat, self.sample_array(stat, first, stop))

    def values(self, stat: str) -> list[float | None]:
        """Per-minute value of `stat` (None where a minute has no sample)."""
        values, minute = self.observations(stat)
        if stat == CALLS_PER_MIN:
            return values.tolist()
        n = len(self.minutes)
        if stat in VALUE_COLUMNS and VALUE_COLUMNS[stat][1] == "p95":
            edges = np.searchsorted(minute, np.arange(n + 1), side="left")
            return [aggregate(stat, values[edges[m]:edges[m + 1]]) for m in range(n)]
        counts = np.bincount(minute, minlength=n)
        sums = np.bincount(minute, weights=values, minlength=n)
        return [float(s / c) if c else None for s, c in zip(sums, counts, strict=True)]


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


# SQLite: REALs travel as integers (its text of a double keeps 15 digits): durations in whole
# nanoseconds as in `metrics.stats`, costs in 1e-12 USD.
DURATION_SCALE, COST_SCALE = 1e6, 1e12
NAN = float("nan")


def _scaled(column: ColumnElement[Any], scale: float) -> ColumnElement[Any]:
    return cast(column * literal_column(repr(scale), Float) + literal_column("0.5", Float),
                Integer)


def _sqlite_columns() -> list[ColumnElement[Any]]:
    """Per call, as JSON arrays (`json_group_array`; the numbers parsed by numpy, `integers`):
    the count, epoch seconds, the flags packed into one integer (flagged + 2 error + 4 retry),
    the error key, duration, tokens in and out, priced cost."""
    return [func.count(), *(func.json_group_array(column) for column in (
        epoch_seconds(C.ts),
        _flag(IS_FLAGGED) + 2 * _flag(IS_ERROR) + 4 * _flag(C.attempt > 1),
        case((IS_ERROR, func.coalesce(C.error_code, UNKNOWN_CODE))),
        _scaled(C.duration_ms, DURATION_SCALE), C.tokens_in, C.tokens_out,
        _scaled(case((C.priced, func.coalesce(C.cost_usd, 0.0))), COST_SCALE),
    ))]


# A JSON array of integers is parsed by numpy with NULL read as this (about 10x faster than
# json.loads and a list to array).
NULL_INTEGER = -(2 ** 63) + 1


def integers(text: str | None, *, nulls: bool = True) -> np.ndarray:
    """A JSON array of integers (or NULLs: NaN) as floats, or as int64 when `nulls` is False."""
    inner = (text or "[]").strip()[1:-1]
    if nulls:
        inner = inner.replace("null", str(NULL_INTEGER))
    found = np.fromstring(inner, dtype=np.int64, sep=",") if inner else np.empty(0, np.int64)
    if not nulls:
        return found
    out = found.astype(float)
    out[found == NULL_INTEGER] = np.nan
    return out


def _postgres_columns() -> list[ColumnElement[Any]]:
    """Per call, as arrays (`array_agg`; numbers without NULLs — NaN — so they load as numpy,
    `triage.arrays`): the count, epoch seconds, packed flags, error key, duration, tokens in and
    out, priced cost."""
    def numbers(column: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.array_agg(func.coalesce(cast(column, Float), literal(NAN, Float)))
    # date_part is double precision (extract is numeric since PG 14: slower, per row);
    # exact to the microsecond at today's epochs, so the floor is the right second.
    epoch = cast(func.floor(func.date_part("epoch", C.ts)), BigInteger)
    return [
        func.count(), func.array_agg(epoch),
        func.array_agg(_flag(IS_FLAGGED) + 2 * _flag(IS_ERROR) + 4 * _flag(C.attempt > 1)),
        func.array_agg(case((IS_ERROR, func.coalesce(C.error_code, UNKNOWN_CODE)))),
        numbers(C.duration_ms), numbers(C.tokens_in), numbers(C.tokens_out),
        numbers(case((C.priced, func.coalesce(C.cost_usd, 0.0)))),
    ]


def _statement_for(dialect: str):  # noqa: ANN202 - a builder for WindowQuery
    """One row whose columns are the window's calls, all in the same (scan) order: far cheaper
    to fetch than a row per call."""
    columns = _postgres_columns() if dialect == "postgresql" else _sqlite_columns()

    def build(conditions: list[ColumnElement[bool]]) -> Select[Any]:
        return select(*columns).where(*conditions)
    return build


def minute_series(
    session: Session,
    route: str,
    start: datetime,
    end: datetime,
    *,
    scope: Scope | None = None,
    where: ColumnElement[bool] | None = None,
) -> MinuteSeries:
    """The per-minute series of `route` over `[start, end)` widened to whole UTC minutes, from
    one query of raw rows (narrowed by `scope` and `where`, as in `metrics.stats`)."""
    start, end = floor_minute(start), ceil_minute(end)
    if start >= end:
        raise ValueError("window start must be before its end")
    dialect = session.get_bind().dialect.name
    window = WindowQuery(route, start, end, scope, where)
    kind = f"triage-series-numpy-{dialect}"
    if dialect == "postgresql" and where is None:
        row = binary_row(session, window.statement(kind, _statement_for(dialect)),
                         {f"w_{name}": value for name, value in window.params.items()})
    else:
        (row,) = window.rows(session, kind, _statement_for(dialect))
    n = int(row[0])
    if dialect == "postgresql":
        epoch, packed, error_keys = (row[i] if n else [] for i in (1, 2, 3))
        numbers = [np.asarray(c if n else [], dtype=float) for c in row[4:]]
    else:
        epoch, packed = (integers(row[i], nulls=False) for i in (1, 2))
        error_keys = json.loads(row[3]) if n else []
        numbers = [integers(c) for c in row[4:]]
        numbers[0] /= DURATION_SCALE
        numbers[3] /= COST_SCALE
    packed = np.asarray(packed, dtype=np.int64)
    columns = [epoch, packed & 1, (packed >> 1) & 1, error_keys, (packed >> 2) & 1, *numbers]
    return series_from_columns(route, start, end, columns)


def series_from_rows(route: str, start: datetime, end: datetime,
                     rows: Sequence[Sequence[Any]]) -> MinuteSeries:
    """A series over `[start, end)` (whole minutes) from rows in ROW_FIELDS order (epoch seconds,
    then 0/1 flags, the error key and the values; None = NULL), in any order."""
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in ROW_FIELDS]
    return series_from_columns(route, start, end, columns)


def series_from_columns(route: str, start: datetime, end: datetime,
                        columns: Sequence[Sequence[Any]]) -> MinuteSeries:
    """A series from one sequence per ROW_FIELDS entry (the calls in any order)."""
    n_minutes = (end - start) // MINUTE
    minute = (np.array(columns[0], dtype=np.int64) - int(start.timestamp())) // 60
    # Every row is in [start, end); SQLite's unixepoch() rounds 13:59:59.9995 up to 14:00:00,
    # which would put a call one minute past the window: it belongs to the last minute.
    minute = np.clip(minute, 0, max(n_minutes - 1, 0))
    order = np.argsort(minute, kind="stable")
    minute = minute[order]
    values = {name: np.array(column, dtype=float)[order]
              for name, column in zip(ROW_FIELDS[1:], columns[1:], strict=True)
              if name != "error_key"}
    error_keys = np.array(columns[3], dtype=object)[order]
    bounds = np.searchsorted(minute, np.arange(n_minutes + 1), side="left")
    return MinuteSeries(
        route=route, start=start, end=end,
        minutes=[start + i * MINUTE for i in range(n_minutes)],
        minute_of=minute, bounds=bounds, columns=values, error_keys=error_keys,
    )
