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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from llm_incident.metrics.percentiles import pg_percentile, sqlite_percentiles
from llm_incident.metrics.scope import C, IS_ERROR, IS_FLAGGED, Scope, event_conditions

DURATION_PS = (50.0, 95.0, 99.0)
UNKNOWN = "unknown"


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

    @property
    def empty(self) -> bool:
        return self.calls == 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["start"], data["end"] = self.start.isoformat(), self.end.isoformat()
        return data


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


_TOTALS = (
    func.count().label("calls"),
    _count_if(IS_FLAGGED).label("flagged"),
    _count_if(IS_ERROR).label("errors"),
    func.count(C.duration_ms).label("n_duration"),
    func.count(C.tokens_in).label("n_tokens_in"),
    func.sum(C.tokens_in).label("sum_tokens_in"),
    func.count(C.tokens_out).label("n_tokens_out"),
    func.sum(C.tokens_out).label("sum_tokens_out"),
    func.sum(case((C.priced, C.cost_usd))).label("cost"),
    _count_if(C.priced).label("priced"),
    _count_if(C.attempt > 1).label("retries"),
)


def _pg_percentiles() -> tuple[ColumnElement[Any], ...]:
    return (
        *(pg_percentile(C.duration_ms, p).label(f"p{p:g}_duration") for p in DURATION_PS),
        pg_percentile(C.tokens_in, 95.0).label("p95_tokens_in"),
        pg_percentile(C.tokens_out, 95.0).label("p95_tokens_out"),
    )


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


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
) -> WindowStats:
    """`window_stats` with the dimension filters as a `Scope` (used by compare and breakdowns)."""
    if start >= end:
        raise ValueError("window start must be before its end")
    conditions = event_conditions(route, start, end, scope, where)
    postgres = session.get_bind().dialect.name == "postgresql"
    columns = _TOTALS + (_pg_percentiles() if postgres else ())
    row = session.execute(select(*columns).where(*conditions)).one()._mapping
    stats = WindowStats(route=route, start=start, end=end)
    minutes = (end - start).total_seconds() / 60
    stats.calls = row["calls"]
    stats.calls_per_min = stats.calls / minutes
    if stats.empty:
        return stats

    stats.flagged, stats.errors, stats.retries = row["flagged"], row["errors"], row["retries"]
    stats.flagged_rate = _share(stats.flagged, stats.calls)
    stats.error_rate = _share(stats.errors, stats.calls)
    stats.retry_share = _share(stats.retries, stats.calls)
    stats.priced_calls = row["priced"]
    stats.unpriced_calls = stats.calls - stats.priced_calls
    stats.total_cost_usd = float(row["cost"] or 0.0)
    if stats.priced_calls:
        stats.cost_per_call_usd = stats.total_cost_usd / stats.priced_calls
    if row["n_tokens_in"]:
        stats.avg_tokens_in = int(row["sum_tokens_in"]) / row["n_tokens_in"]
    if row["n_tokens_out"]:
        stats.avg_tokens_out = int(row["sum_tokens_out"]) / row["n_tokens_out"]

    if postgres:
        details = _pg_details(session, conditions, row)
    else:
        details = _sqlite_details(session, conditions, row)
    durations, stats.p95_tokens_in, stats.p95_tokens_out, mix, codes = details
    stats.p50_duration_ms, stats.p95_duration_ms, stats.p99_duration_ms = (
        durations[p] for p in DURATION_PS)
    stats.model_mix, stats.error_codes = _largest_first(mix), _largest_first(codes)
    return stats


_Details = tuple[dict[float, Any], Any, Any, dict[str, int], dict[str, int]]
_ERROR_KEY = case((IS_ERROR, func.coalesce(C.error_code, UNKNOWN)))


def _pg_details(session: Session, conditions: list[ColumnElement[bool]], row: Any) -> _Details:
    """PostgreSQL computed the percentiles with the totals; add model mix and error codes."""
    durations = {p: row[f"p{p:g}_duration"] for p in DURATION_PS}
    mix, codes = _mix_and_codes(session, conditions)
    return durations, row["p95_tokens_in"], row["p95_tokens_out"], mix, codes


def _sqlite_details(session: Session, conditions: list[ColumnElement[bool]], row: Any) -> _Details:
    """Percentiles column by column on the covering indexes, then model mix and error codes."""
    durations = sqlite_percentiles(session, C.duration_ms, DURATION_PS, conditions,
                                   row["n_duration"])
    p95_in = sqlite_percentiles(session, C.tokens_in, (95.0,), conditions, row["n_tokens_in"])
    p95_out = sqlite_percentiles(session, C.tokens_out, (95.0,), conditions, row["n_tokens_out"])
    mix, codes = _mix_and_codes(session, conditions)
    return durations, p95_in[95.0], p95_out[95.0], mix, codes


def _mix_and_codes(
    session: Session, conditions: list[ColumnElement[bool]]
) -> tuple[dict[str, int], dict[str, int]]:
    """Calls per model and errors per code, from one grouped query."""
    rows = session.execute(
        select(C.model, _ERROR_KEY, func.count()).where(*conditions).group_by(C.model, _ERROR_KEY)
    ).all()
    mix: dict[str, int] = {}
    codes: dict[str, int] = {}
    for model_name, error_code, count in rows:
        key = model_name if model_name is not None else UNKNOWN
        mix[key] = mix.get(key, 0) + count
        if error_code is not None:
            codes[error_code] = codes.get(error_code, 0) + count
    return mix, codes


def _largest_first(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
