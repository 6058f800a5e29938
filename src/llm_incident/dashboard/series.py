"""The numbers behind the dashboard's charts.

- `route_series`: a route's stats per bucket (`metrics.stats.stats_for` on each bucket, so every
  point is what the metrics API answers for that bucket's window);
- `flagged_sparklines`: calls and flagged calls per bucket for every route at once (one grouped
  query), drawn as the overview's sparklines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, Integer, case, cast, func, select
from sqlalchemy.orm import Session

from llm_incident.metrics.scope import C, IS_FLAGGED, event_conditions
from llm_incident.metrics.stats import WindowStats, stats_for

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


def route_series(session: Session, route: str, edges: list[datetime]) -> list[WindowStats]:
    """The route's stats for each bucket between consecutive `edges`."""
    return [stats_for(session, route, left, right)
            for left, right in zip(edges, edges[1:], strict=False)]


def points(buckets: list[WindowStats], stat: str) -> list[Point]:
    """One stat of each bucket (cost counts as 0 in a bucket with calls but none priced)."""
    out = []
    for b in buckets:
        value = getattr(b, stat) if b.calls else None
        out.append(Point(b.start, b.end, None if value is None else float(value)))
    return out


def _epoch_seconds(dialect: str):  # noqa: ANN202 - a SQL expression
    if dialect == "postgresql":
        return cast(func.floor(func.extract("epoch", C.ts)), BigInteger)
    return cast(func.strftime("%s", C.ts), Integer)


def flagged_sparklines(session: Session, start: datetime, end: datetime, buckets: int
                       ) -> dict[str, list[float | None]]:
    """route → flagged rate per bucket over `[start, end)` in `buckets` equal buckets (None for a
    bucket without calls)."""
    width = (end - start) / buckets
    seconds = max(1, int(width.total_seconds()))
    origin = int(start.timestamp())
    dialect = session.get_bind().dialect.name
    index = cast(func.floor((_epoch_seconds(dialect) - origin) / float(seconds)), Integer)
    stmt = (select(C.route, index, func.count(), func.sum(case((IS_FLAGGED, 1), else_=0)))
            .where(*event_conditions(None, start, end)).group_by(C.route, index))
    counts: dict[str, list[list[int]]] = {}
    for route, i, calls, flagged in session.execute(stmt):
        row = counts.setdefault(route, [[0, 0] for _ in range(buckets)])
        cell = row[min(max(int(i), 0), buckets - 1)]
        cell[0] += calls
        cell[1] += int(flagged or 0)
    return {route: [f / n if n else None for n, f in row] for route, row in counts.items()}

def bucket_edges(start: datetime, end: datetime, buckets: int) -> list[datetime]:
    """`buckets` + 1 equal edges from `start` to `end`."""
    width: timedelta = (end - start) / buckets
    return [start + i * width for i in range(buckets)] + [end]
