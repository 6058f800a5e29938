"""Window statistics of a route: volume, quality, errors, latency, tokens, cost, retries, model mix.

Conventions (the numbers a responder quotes at 3 a.m.):

- A window is `start <= ts < end`. Rates are shares of calls (0.042 = 4.2 %); with no calls they
  are None ("no traffic"), never a division by zero.
- flagged = status "flagged" OR contains_banned. error = status "error" OR an error_code is set;
  `error_codes` counts errors by code ("unknown" when an error carried none).
- Percentiles are nearest-rank (see `metrics.percentiles`) and identical on SQLite and PostgreSQL.
  Percentiles and averages ignore events where that column is NULL (e.g. p95_duration_ms is over
  the events that reported a duration); all None when no event reported the column.
- Cost counts priced events only (`priced` = the cost is known). `total_cost_usd` sums them,
  `cost_per_call_usd` = total / priced calls, and `unpriced_calls` says how many were left out.
- retry_share = share of calls with attempt > 1. `model_mix` = calls per model ("unknown" = none).

Two paths, one API: windows up to `exact_window_max()` (LLM_INCIDENT_EXACT_WINDOW_MAX, 6 h)
are exact from raw events; longer ones (or any window with `path="rollups"`, e.g. baselines)
come from per-minute rollups when those can answer (`metrics.rollup_stats`): counts, sums, rates,
codes and mixes still exact, percentiles within 1 % — `approximate` is then True and
`precision` says "≈, ±1 %" for whoever shows the numbers.

How (figures in bench/metrics.py):

- Each call is one statement (bar fallbacks). Without a `where` filter it is built once per shape
  (route or not, which scope fields) on bound parameters and reused (`scope.WindowQuery`).
- SQLite, windows up to `FAST_PATH_MAX_ROWS` events: over the covering index
  `ix_events_route_ts_stats`. SQL counts what is cheap to count there (calls, flagged, retries,
  priced calls, cost); the columns behind percentiles, averages, model mix and error codes come
  back as JSON arrays (`json_group_array` — far cheaper than a Python tuple per row; errors = the
  length of the error-code array) and Python finishes them: `select_ranks` for percentiles,
  `Counter` for the mixes. duration_ms is a REAL that JSON text would round, so it travels as
  whole microseconds, and the same statement counts the durations microseconds do not represent
  exactly (any → durations take `sqlite_percentiles` instead). A count capped at the limit, in
  the WHERE clause, is evaluated once before the scan: a larger window makes the statement read
  nothing and take the bounded path.
- Bounded path (larger SQLite windows, or SQLite < 3.38): one aggregate pass, percentiles column by
  column on the covering indexes (`sqlite_percentiles`), one grouped query for model mix and error
  codes — memory stays bounded whatever the window.
- PostgreSQL: one scan: the aggregates, `percentile_disc` (one sort for the three duration
  percentiles, one per token column; sorts spill to disk past work_mem), the model names joined
  by a control character and the error codes as an array, counted in Python. A model name that
  holds the separator shows up as extra parts: the mix is then counted by a grouped query.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (Float, Integer, Select, bindparam, case, cast, exists, func, literal,
                        literal_column, select)
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from llm_incident.metrics.percentiles import (
    nearest_rank,
    pg_percentile,
    pg_percentiles,
    raw_rows,
    select_ranks,
    sqlite_percentiles,
)
from llm_incident.metrics.rollup_stats import (APPROX_NOTE, Totals, eligible, exact_window_max,
                                               rollup_totals)
from llm_incident.metrics.scope import C, IS_ERROR, IS_FLAGGED, Scope, WindowQuery

DURATION_PS = (50.0, 95.0, 99.0)
UNKNOWN = "unknown"
# Largest SQLite window read in one pass into Python (about 200 bytes of JSON and Python objects
# per event at the peak, so ~60 MB); larger windows take the bounded path.
FAST_PATH_MAX_ROWS = 300_000


@dataclass
class WindowStats:
    """Every stat of one route over one window; `to_dict()` is the JSON form."""

    route: str | None
    start: datetime
    end: datetime
    calls: int = 0
    calls_per_min: float = 0.0
    flagged: int = 0
    flagged_rate: float | None = None
    errors: int = 0
    error_rate: float | None = None
    error_codes: dict[str, int] = field(default_factory=dict)
    p50_duration_ms: float | None = None
    p95_duration_ms: float | None = None
    p99_duration_ms: float | None = None
    avg_tokens_in: float | None = None
    p95_tokens_in: int | None = None
    avg_tokens_out: float | None = None
    p95_tokens_out: int | None = None
    total_cost_usd: float = 0.0
    cost_per_call_usd: float | None = None
    priced_calls: int = 0
    unpriced_calls: int = 0
    retries: int = 0
    retry_share: float | None = None
    model_mix: dict[str, int] = field(default_factory=dict)
    approximate: bool = False  # percentiles from rollups (within 1 %); counts exact either way
    precision: str | None = None  # "≈, ±1 %" when approximate: show it beside the numbers

    @property
    def empty(self) -> bool:
        return self.calls == 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["start"], data["end"] = self.start.isoformat(), self.end.isoformat()
        return data


def window_stats(
    session: Session,
    route: str | None,
    start: datetime,
    end: datetime,
    *,
    env: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    region: str | None = None,
    customer_tier: str | None = None,
    where: ColumnElement[bool] | None = None,
) -> WindowStats:
    """Stats of `route` (None = every route) over `[start, end)`, narrowed by the dimension
    filters and `where` (e.g. `compile_filter(...)`)."""
    scope = Scope(env, model, provider, region, customer_tier)
    return stats_for(session, route, start, end, scope=scope, where=where)


def stats_for(
    session: Session,
    route: str | None,
    start: datetime,
    end: datetime,
    *,
    scope: Scope | None = None,
    where: ColumnElement[bool] | None = None,
    fast_path_max_rows: int | None = None,
    path: str = "auto",
) -> WindowStats:
    """`window_stats` with the dimension filters as a `Scope` (used by compare and breakdowns).
    `path`: "auto" (rollups past `exact_window_max()`), "rollups" (whenever they can answer:
    baselines), "exact" (raw events only). `fast_path_max_rows` overrides `FAST_PATH_MAX_ROWS`
    (tests)."""
    if start >= end:
        raise ValueError("window start must be before its end")
    stats = WindowStats(route=route, start=start, end=end)
    if path != "exact" and eligible(scope, where) and (
            path == "rollups" or end - start > exact_window_max()):
        totals = rollup_totals(session, route, start, end, scope)
        if totals is not None:
            return stats_from_totals(route, start, end, totals)
    window = WindowQuery(route, start, end, scope, where)
    if session.get_bind().dialect.name == "postgresql":
        _postgres(session, window, stats)
    else:
        limit = FAST_PATH_MAX_ROWS if fast_path_max_rows is None else fast_path_max_rows
        if sqlite3.sqlite_version_info < (3, 38, 0) or not _sqlite_one_pass(
                session, window, stats, limit):
            _sqlite_bounded(session, window.conditions(), stats)
    stats.calls_per_min = stats.calls / ((end - start).total_seconds() / 60)
    return stats


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _set_counts(stats: WindowStats, calls: int, flagged: int, errors: int, retries: int,
                priced: int, cost: float | None) -> None:
    stats.calls, stats.flagged, stats.errors, stats.retries = calls, flagged, errors, retries
    stats.flagged_rate = _share(flagged, calls)
    stats.error_rate = _share(errors, calls)
    stats.retry_share = _share(retries, calls)
    stats.priced_calls, stats.unpriced_calls = priced, calls - priced
    stats.total_cost_usd = float(cost or 0.0)
    if priced:
        stats.cost_per_call_usd = stats.total_cost_usd / priced


def _set_durations(stats: WindowStats, durations: dict[float, Any]) -> None:
    stats.p50_duration_ms, stats.p95_duration_ms, stats.p99_duration_ms = (
        durations[p] for p in DURATION_PS)


def _largest_first(counts: dict[Any, int]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for key, count in counts.items():
        name = UNKNOWN if key is None else key
        merged[name] = merged.get(name, 0) + count
    return dict(sorted(merged.items(), key=lambda kv: (-kv[1], kv[0])))


def stats_from_totals(route: str, start: datetime, end: datetime, t: Totals) -> WindowStats:
    """What `stats_for` answers on its rollup path (percentiles at the exact path's ranks)."""
    stats = WindowStats(route=route, start=start, end=end)
    _set_counts(stats, t.calls, t.flagged, t.errors, t.retries, t.priced, t.cost)
    _set_averages(stats, t.n_in, t.sum_in, t.n_out, t.sum_out)
    n = t.durations.count
    values = t.durations.values_at_ranks([nearest_rank(p, n) for p in DURATION_PS]) if n else [None] * 3
    _set_durations(stats, dict(zip(DURATION_PS, values, strict=True)))
    for name, merged in (("p95_tokens_in", t.tokens_in), ("p95_tokens_out", t.tokens_out)):
        if merged.count:
            (value,) = merged.values_at_ranks([nearest_rank(95.0, merged.count)])
            setattr(stats, name, round(value))
    stats.model_mix = _largest_first(t.models)
    stats.error_codes = _largest_first(t.codes)
    stats.calls_per_min = stats.calls / ((end - start).total_seconds() / 60)
    stats.approximate, stats.precision = True, APPROX_NOTE
    return stats


# --- SQLite, one pass --------------------------------------------------------------------------

_MICROS_PER_MS = literal_column("1000000.0", Float)
# duration_ms in whole microseconds (+ 0.5 then truncation rounds a duration >= 0 to nearest).
_DURATION_US = cast(C.duration_ms * _MICROS_PER_MS + literal_column("0.5", Float), Integer)

_ONE_PASS = (
    func.count(),
    func.count().filter(IS_FLAGGED),
    func.count().filter(C.attempt > 1),
    func.count().filter(C.priced),
    func.sum(C.cost_usd).filter(C.priced),
    # Durations the microsecond figure does not give back exactly (as Python computes it below).
    func.count().filter(_DURATION_US.op("/")(_MICROS_PER_MS) != C.duration_ms),
    func.json_group_array(_DURATION_US).filter(C.duration_ms.is_not(None)),
    func.json_group_array(C.tokens_in).filter(C.tokens_in.is_not(None)),
    func.json_group_array(C.tokens_out).filter(C.tokens_out.is_not(None)),
    func.json_group_array(C.model),
    func.json_group_array(func.coalesce(C.error_code, UNKNOWN)).filter(IS_ERROR),
)


def _at_most(conditions: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    """True when at most `:w_limit` events match; reads no more than limit + 1 of them."""
    limit = bindparam("w_limit", type_=Integer)
    return ~exists(select(literal_column("1")).where(*conditions).offset(limit))


def _one_pass_statement(conditions: list[ColumnElement[bool]]) -> Select[Any]:
    return select(*_ONE_PASS).where(*conditions, _at_most(conditions))


def _sqlite_one_pass(session: Session, window: WindowQuery, stats: WindowStats,
                     limit: int) -> bool:
    """Fill `stats` from one statement; False (nothing filled) for an empty window or one over
    `limit` events — the bounded path tells those apart."""
    (row,) = window.rows(session, "sqlite", _one_pass_statement, w_limit=limit)
    calls, flagged, retries, priced, cost, inexact = row[:6]
    if not calls:
        return False
    micros, tokens_in, tokens_out, models, codes = map(json.loads, row[6:])
    _set_counts(stats, calls, flagged, len(codes), retries, priced, cost)
    if inexact:  # durations with sub-microsecond digits: read them exactly instead
        _set_durations(stats, sqlite_percentiles(session, C.duration_ms, DURATION_PS,
                                                 window.conditions(), len(micros)))
    else:
        picked = _at_ranks(micros, DURATION_PS)
        _set_durations(stats, {p: None if v is None else float(v) / 1_000_000
                               for p, v in zip(DURATION_PS, picked, strict=True)})
    if tokens_in:
        stats.avg_tokens_in = sum(tokens_in) / len(tokens_in)
        (stats.p95_tokens_in,) = _at_ranks(tokens_in, (95.0,))
    if tokens_out:
        stats.avg_tokens_out = sum(tokens_out) / len(tokens_out)
        (stats.p95_tokens_out,) = _at_ranks(tokens_out, (95.0,))
    stats.model_mix = _largest_first(Counter(models))
    stats.error_codes = _largest_first(Counter(codes))
    return True


def _at_ranks(values: list[Any], ps: tuple[float, ...]) -> list[Any]:
    if not values:
        return [None] * len(ps)
    return select_ranks(values, [nearest_rank(p, len(values)) for p in ps])


# --- SQLite, bounded memory --------------------------------------------------------------------

def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


_TOTALS = (
    func.count().label("calls"),
    _count_if(IS_FLAGGED).label("flagged"),
    _count_if(IS_ERROR).label("errors"),
    _count_if(C.attempt > 1).label("retries"),
    _count_if(C.priced).label("priced"),
    func.sum(case((C.priced, C.cost_usd))).label("cost"),
    func.count(C.duration_ms).label("n_duration"),
    func.count(C.tokens_in).label("n_tokens_in"),
    func.sum(C.tokens_in).label("sum_tokens_in"),
    func.count(C.tokens_out).label("n_tokens_out"),
    func.sum(C.tokens_out).label("sum_tokens_out"),
)
_ERROR_KEY = case((IS_ERROR, func.coalesce(C.error_code, UNKNOWN)))


def _set_totals(stats: WindowStats, row: Any) -> None:
    """Counts, rates, cost and token averages from a `_TOTALS` row (positional)."""
    _set_counts(stats, *row[:6])
    _set_averages(stats, *row[7:11])


def _set_averages(stats: WindowStats, n_in: int, sum_in: Any, n_out: int, sum_out: Any) -> None:
    stats.avg_tokens_in = int(sum_in) / n_in if n_in else None
    stats.avg_tokens_out = int(sum_out) / n_out if n_out else None


def _sqlite_bounded(session: Session, conditions: list[ColumnElement[bool]],
                    stats: WindowStats) -> None:
    """Aggregates, then percentiles column by column on the covering indexes, then model mix and
    error codes — the same read transaction, so one snapshot."""
    (row,) = raw_rows(session, select(*_TOTALS).where(*conditions))
    _set_totals(stats, row)
    if stats.empty:
        return
    n_duration, n_in, n_out = row[6], row[7], row[9]
    _set_durations(stats, sqlite_percentiles(session, C.duration_ms, DURATION_PS, conditions,
                                             n_duration))
    stats.p95_tokens_in = sqlite_percentiles(session, C.tokens_in, (95.0,), conditions, n_in)[95.0]
    stats.p95_tokens_out = sqlite_percentiles(session, C.tokens_out, (95.0,), conditions,
                                              n_out)[95.0]
    grouped = raw_rows(session, select(C.model, _ERROR_KEY, func.count())
                       .where(*conditions).group_by(C.model, _ERROR_KEY))
    _set_mixes(stats, grouped)


def _set_mixes(stats: WindowStats, grouped: list[Any]) -> None:
    """Model mix and error codes from (model, error key or None, count) groups."""
    mix: Counter[Any] = Counter()
    codes: Counter[Any] = Counter()
    for model_name, error_code, count in grouped:
        mix[model_name] += count
        if error_code is not None:
            codes[error_code] += count
    stats.model_mix, stats.error_codes = _largest_first(mix), _largest_first(codes)


# --- PostgreSQL --------------------------------------------------------------------------------

_SEPARATOR = "\x1f"  # between model names in string_agg (checked: one that holds it is exact too)
_PG_ONE_PASS = (
    func.count(),
    func.count().filter(IS_FLAGGED),
    func.count().filter(C.attempt > 1),
    func.count().filter(C.priced),
    func.sum(C.cost_usd).filter(C.priced),
    func.count(C.tokens_in),
    func.sum(C.tokens_in),
    func.count(C.tokens_out),
    func.sum(C.tokens_out),
    pg_percentiles(C.duration_ms, DURATION_PS),
    pg_percentile(C.tokens_in, 95.0),
    pg_percentile(C.tokens_out, 95.0),
    func.count(C.model),
    func.string_agg(C.model, literal(_SEPARATOR)),
    func.array_agg(func.coalesce(C.error_code, UNKNOWN)).filter(IS_ERROR),
)


def _postgres_statement(conditions: list[ColumnElement[bool]]) -> Select[Any]:
    return select(*_PG_ONE_PASS).where(*conditions)


def _postgres(session: Session, window: WindowQuery, stats: WindowStats) -> None:
    """One scan: aggregates, percentile_disc (one sort for the three duration percentiles),
    model names joined by a separator and error codes as an array, counted in Python."""
    (row,) = window.rows(session, "postgresql", _postgres_statement)
    calls, flagged, retries, priced, cost, n_in, sum_in, n_out, sum_out = row[:9]
    if not calls:
        return
    durations, stats.p95_tokens_in, stats.p95_tokens_out, n_models, joined, codes = row[9:]
    codes = codes or []
    _set_counts(stats, calls, flagged, len(codes), retries, priced, cost)
    _set_averages(stats, n_in, sum_in, n_out, sum_out)
    _set_durations(stats, dict(zip(DURATION_PS, durations or [None] * 3, strict=True)))
    models = joined.split(_SEPARATOR) if n_models else []
    if len(models) != n_models:  # a model name holds the separator: count them in SQL
        mix = dict(window.rows(session, "postgresql-models", _models_statement))
    else:
        mix = Counter(models)
        if calls > n_models:
            mix[None] = calls - n_models
    stats.model_mix = _largest_first(mix)
    stats.error_codes = _largest_first(Counter(codes))


def _models_statement(conditions: list[ColumnElement[bool]]) -> Select[Any]:
    return select(C.model, func.count()).where(*conditions).group_by(C.model)
