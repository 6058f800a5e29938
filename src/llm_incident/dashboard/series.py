"""The numbers behind the dashboard's charts.

- `route_series`: a route's charted stats per bucket — calls, flagged rate, p95 duration, p95
  tokens_out, total cost — with the conventions of `metrics.stats` (nearest-rank percentiles over
  the non-NULL values, cost over priced calls), from one grouped query over the window: SQLite
  sends each bucket's durations (whole microseconds) and tokens as JSON arrays and Python picks
  the ranks; PostgreSQL computes `percentile_disc` per group. The same numbers as `stats_for` on
  each bucket (tests/integration/test_dashboard_series.py), for one scan instead of one per bucket.
  Ranges longer than `exact_window_max()` (24 h, 7 d, 30 d) read the rollups instead
  (`metrics.rollup_stats.rollup_buckets`: whole hours, minutes at the hour edges, raw events
  after the rollups' end; one query per source): counts and cost exact, percentiles within 1 %
  (marked approximate), the same numbers as `stats_for(path="rollups")` on each bucket;
- `flagged_sparklines`: calls and flagged calls per bucket for every route at once (one grouped
  query; from the rollups' grouped queries past `exact_window_max()`), drawn as the overview's
  sparklines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import json
from typing import Any

from sqlalchemy import Float, Integer, case, cast, func, literal_column, select
from sqlalchemy.orm import Session

from llm_incident.metrics.percentiles import nearest_rank, pg_percentile, raw_rows, select_ranks
from llm_incident.metrics.rollup_stats import exact_window_max, rollup_buckets, route_counts
from llm_incident.metrics.scope import C, IS_FLAGGED, event_conditions
from llm_incident.metrics.sql_time import bucket_index
from llm_incident.metrics.stats import WindowStats, stats_from_totals

CHARTED = (
    ("flagged_rate", "flagged rate", "rate"),
    ("p95_duration_ms", "p95 duration", "ms"),
    ("p95_tokens_out", "p95 tokens_out", "count"),
    ("total_cost_usd", "cost", "usd"),
)


@dataclass(frozen=True)
class Point:
    """One bucket: its start and end, and the stat's value (None: no calls or no data)."""

    start: datetime
    end: datetime
    value: float | None


def route_series(session: Session, route: str, edges: list[datetime], *,
                 now: datetime | None = None) -> list[WindowStats]:
    """The route's charted stats for each bucket between consecutive `edges` (equal widths of
    whole seconds); from raw events the other fields of each WindowStats are left empty (from
    rollups they are filled as `stats_for` fills them). `now`: the last bucket may reach past
    it (no events there yet)."""
    start, end = edges[0], edges[-1]
    n = len(edges) - 1
    if end - start > exact_window_max():
        totals = rollup_buckets(session, route, edges, now=now)
        if totals is not None:
            return [stats_from_totals(route, a, b, t)
                    for a, b, t in zip(edges, edges[1:], totals, strict=False)]
    width = max(1, round((end - start).total_seconds() / n))
    dialect = session.get_bind().dialect.name
    index = bucket_index(C.ts, int(start.timestamp()), width)
    buckets = [WindowStats(route=route, start=a, end=b)
               for a, b in zip(edges, edges[1:], strict=False)]
    statement = (select(index, *_AGGREGATES[dialect])
                 .where(*event_conditions(route, start, end)).group_by(index))
    for i, calls, flagged, priced, cost, durations, tokens in raw_rows(session, statement):
        b = buckets[min(max(int(i), 0), n - 1)]
        b.calls, b.flagged, b.priced_calls = calls, int(flagged), int(priced)
        b.flagged_rate = b.flagged / calls
        b.total_cost_usd = float(cost or 0.0)
        if dialect == "postgresql":
            b.p95_duration_ms = None if durations is None else float(durations)
            b.p95_tokens_out = tokens
        else:
            (micros,) = _p95(json.loads(durations))
            b.p95_duration_ms = None if micros is None else micros / 1_000_000
            (b.p95_tokens_out,) = _p95(json.loads(tokens))
    return buckets


def _p95(values: list[Any]) -> list[Any]:
    return select_ranks(values, [nearest_rank(95.0, len(values))]) if values else [None]


_MICROS = cast(C.duration_ms * literal_column("1000000.0", Float) + literal_column("0.5", Float),
               Integer)
_COUNTS = (func.count(), func.sum(case((IS_FLAGGED, 1), else_=0)),
           func.sum(case((C.priced, 1), else_=0)), func.sum(case((C.priced, C.cost_usd))))
_AGGREGATES = {
    "sqlite": (*_COUNTS, func.json_group_array(_MICROS).filter(C.duration_ms.is_not(None)),
               func.json_group_array(C.tokens_out).filter(C.tokens_out.is_not(None))),
    "postgresql": (*_COUNTS, pg_percentile(C.duration_ms, 95.0), pg_percentile(C.tokens_out, 95.0)),
}


def points(buckets: list[WindowStats], stat: str) -> list[Point]:
    """One stat of each bucket (cost counts as 0 in a bucket with calls but none priced)."""
    out = []
    for b in buckets:
        value = getattr(b, stat) if b.calls else None
        out.append(Point(b.start, b.end, None if value is None else float(value)))
    return out


def flagged_sparklines(session: Session, start: datetime, end: datetime, buckets: int, *,
                       now: datetime | None = None) -> dict[str, list[float | None]]:
    """route → flagged rate per bucket over `[start, end)` in `buckets` equal buckets (None for a
    bucket without calls; `now`: what lies after it holds no events yet). Buckets of whole hours
    on whole hours read only the hour rollups (`Range.spark_window` gives those for 30 d)."""
    if end - start > exact_window_max():
        step = (end - start) / buckets
        counts = route_counts(session, [start + i * step for i in range(buckets)] + [end], now=now)
        if counts is not None:
            return {route: [f / n if n else None for n, f in row] for route, row in counts.items()}
    seconds = max(1, int(((end - start) / buckets).total_seconds()))
    index = bucket_index(C.ts, int(start.timestamp()), seconds)
    stmt = (select(C.route, index, func.count(), func.sum(case((IS_FLAGGED, 1), else_=0)))
            .where(*event_conditions(None, start, end)).group_by(C.route, index))
    counts: dict[str, list[list[int]]] = {}
    for route, i, calls, flagged in session.execute(stmt):
        row = counts.setdefault(route, [[0, 0] for _ in range(buckets)])
        cell = row[min(max(int(i), 0), buckets - 1)]
        cell[0] += calls
        cell[1] += int(flagged or 0)
    return {route: [f / n if n else None for n, f in row] for route, row in counts.items()}
