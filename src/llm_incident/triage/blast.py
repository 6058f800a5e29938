"""Blast radius: which envs, customer tiers, regions and models of a route moved at the onset, and
which other routes shifted at the same onset (± `ONSET_TOLERANCE`).

- Windows (`comparison_windows`): after = `[onset, now)`; before = the same length just before the
  onset, at least `MIN_BEFORE` and at most the lookback. The report's metric deltas use them too.
- Each dimension value with at least `MIN_SHARE` of the calls after the onset (at most
  `MAX_VALUES` per dimension) gets the stat before → after from `metrics.stats.stats_for`, so the
  numbers agree with the rest of the product. It moved when it changed the way the route did by
  at least half as much (`MOVED_FRACTION`): percentage points for a rate, log ratio otherwise; a
  value not seen before the onset is compared with the route's before.
- Other routes: the `max_routes` busiest with calls since the onset run through the shift
  detector (`detect_route`, over at most `OTHER_LOOKBACK` before the onset); a route is affected
  when one of its moved stats has its onset within the tolerance (the same stat preferred).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import desc, func, select
from sqlalchemy.orm import Session

from llm_incident.metrics.compare import COMPARED, fmt
from llm_incident.metrics.scope import C, Scope, event_conditions
from llm_incident.metrics.stats import WindowStats, stats_for
from llm_incident.metrics.windows import Window
from llm_incident.triage.attribution import aware_utc

BLAST_DIMENSIONS = ("env", "customer_tier", "region", "model")
MIN_BEFORE = timedelta(minutes=15)
ONSET_TOLERANCE = timedelta(minutes=3)
OTHER_LOOKBACK = timedelta(hours=2)
MIN_SHARE = 0.01
MAX_VALUES = 6
MOVED_FRACTION = 0.5
RATE_STATS = ("flagged_rate", "error_rate", "retry_share")


def comparison_windows(onset: datetime, now: datetime, lookback: timedelta
                       ) -> tuple[Window, Window]:
    """(before, after): after = [onset, now); before = as long, just before the onset, at least
    MIN_BEFORE, at most `lookback`."""
    onset, now = aware_utc(onset), aware_utc(now)
    span = min(max(now - onset, MIN_BEFORE), lookback)
    return Window(onset - span, onset), Window(onset, now)


def stat_value(stats: WindowStats, stat: str) -> float | None:
    """`stat` read off WindowStats (`error_code_rate:<code>` from its error codes)."""
    if stat.startswith("error_code_rate:"):
        if not stats.calls:
            return None
        return stats.error_codes.get(stat.split(":", 1)[1], 0) / stats.calls
    return getattr(stats, stat)


def is_rate(stat: str) -> bool:
    return stat in RATE_STATS or stat.startswith("error_code_rate:")


def format_stat(stat: str, value: float | None) -> str:
    kind = "rate" if is_rate(stat) else COMPARED.get(stat, (stat, "number"))[1]
    return fmt(value, kind)


def change(stat: str, before: float | None, after: float | None) -> float | None:
    """How far `stat` moved: points (as a fraction) for a rate, log ratio otherwise."""
    if before is None or after is None:
        return None
    if is_rate(stat):
        return after - before
    if before <= 0 or after <= 0:
        return None if before == after else math.copysign(math.inf, after - before)
    return math.log(after / before)


def moved_like(stat: str, route_move: float | None, before: float | None,
               after: float | None) -> bool:
    """Whether a value's move is the route's direction and at least MOVED_FRACTION of it."""
    own = change(stat, before, after)
    if route_move is None or own is None or route_move == 0:
        return False
    if math.isinf(route_move):
        return math.isinf(own) and own == route_move
    return own / route_move >= MOVED_FRACTION


@dataclass
class ValueMove:
    """One dimension value of the route: its share of calls after the onset and the stat."""

    dimension: str
    value: str
    calls_after: int
    share_after: float
    before: float | None
    after: float | None
    moved: bool
    stat: str

    def text(self) -> str:
        return (f"{self.dimension} {self.value} ({self.share_after * 100:.0f} % of calls): "
                f"{format_stat(self.stat, self.before)} → {format_stat(self.stat, self.after)}")

    def to_dict(self) -> dict[str, Any]:
        return {"dimension": self.dimension, "value": self.value, "calls_after": self.calls_after,
                "share_after": self.share_after, "before": self.before, "after": self.after,
                "moved": self.moved, "text": self.text()}


@dataclass
class RouteMove:
    """Another route whose stat shifted at about the same onset."""

    route: str
    stat: str
    onset: datetime
    before: float | None
    after: float | None
    ratio: float | None
    confidence: float

    def text(self) -> str:
        return (f"{self.route}: {self.stat} {format_stat(self.stat, self.before)} → "
                f"{format_stat(self.stat, self.after)} from {self.onset:%H:%M}")

    def to_dict(self) -> dict[str, Any]:
        return {"route": self.route, "stat": self.stat, "onset": self.onset.isoformat(),
                "before": self.before, "after": self.after, "ratio": self.ratio,
                "confidence": self.confidence, "text": self.text()}


@dataclass
class BlastRadius:
    route: str
    stat: str
    onset: datetime
    before: Window
    after: Window
    route_before: float | None
    route_after: float | None
    values: list[ValueMove] = field(default_factory=list)
    routes: list[RouteMove] = field(default_factory=list)
    routes_examined: int = 0

    def affected(self, dimension: str) -> list[ValueMove]:
        """The values of `dimension` that moved, largest share first."""
        return [v for v in self.values if v.dimension == dimension and v.moved]

    def affected_routes(self) -> list[str]:
        return [self.route, *(r.route for r in self.routes)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route, "stat": self.stat, "onset": self.onset.isoformat(),
            "before": self.before.to_dict(), "after": self.after.to_dict(),
            "route_before": self.route_before, "route_after": self.route_after,
            "values": [v.to_dict() for v in self.values],
            "affected": {d: [v.value for v in self.affected(d)] for d in BLAST_DIMENSIONS},
            "routes": [r.to_dict() for r in self.routes],
            "routes_examined": self.routes_examined,
        }


def _value_counts(session: Session, route: str, after: Window) -> dict[str, list[tuple[Any, int]]]:
    """Calls after the onset per value of each blast dimension, busiest first."""
    out: dict[str, list[tuple[Any, int]]] = {}
    conditions = event_conditions(route, after.start, after.end)
    for dim in BLAST_DIMENSIONS:
        rows = session.execute(select(C[dim], func.count()).where(*conditions)
                               .group_by(C[dim])).all()
        out[dim] = sorted(((v, n) for v, n in rows), key=lambda r: (-r[1], str(r[0])))
    return out


def _values(session: Session, route: str, stat: str, before: Window, after: Window,
            route_move: float | None, route_before: float | None) -> list[ValueMove]:
    out = []
    counts = _value_counts(session, route, after)
    for dim, rows in counts.items():
        total = sum(n for _, n in rows)
        for value, calls in rows[:MAX_VALUES]:
            share = calls / total
            if share < MIN_SHARE or value is None:
                continue
            scope = Scope(**{dim: value})
            was = stat_value(stats_for(session, route, before.start, before.end, scope=scope),
                             stat)
            now = stat_value(stats_for(session, route, after.start, after.end, scope=scope),
                             stat)
            moved = moved_like(stat, route_move, was if was is not None else route_before, now)
            out.append(ValueMove(dim, str(value), calls, share, was, now, moved, stat))
    return out


def busiest_routes(session: Session, *, since: datetime, now: datetime, exclude: str,
                   limit: int) -> list[str]:
    """The `limit` routes with the most calls in `[since, now)`, other than `exclude`."""
    calls = func.count()
    rows = session.execute(
        select(C.route, calls).where(C.ts >= since, C.ts < now, C.route != exclude)
        .group_by(C.route).order_by(desc(calls), C.route).limit(limit)
    ).all()
    return [route for route, _ in rows]


def _route_move(shifts: Any, route: str, stat: str, onset: datetime) -> RouteMove | None:
    near = [s for s in shifts.moved() if s.onset is not None
            and abs(aware_utc(s.onset) - onset) <= ONSET_TOLERANCE]
    if not near:
        return None
    near.sort(key=lambda s: (s.stat != stat, -s.confidence, s.stat))
    best = near[0]
    return RouteMove(route, best.stat, aware_utc(best.onset), best.before, best.after,
                     best.ratio, best.confidence)


def blast_radius(session: Session, route: str, *, stat: str, onset: datetime, now: datetime,
                 lookback: timedelta = timedelta(hours=6), max_routes: int = 20,
                 detect: Callable[..., Any] | None = None) -> BlastRadius:
    """Which values of `route` and which other routes moved at `onset` (see the docstring).

    `detect`: the shift detector (default `triage.shifts.detect_route`)."""
    if detect is None:
        from llm_incident.triage.shifts import detect_route as detect
    onset, now = aware_utc(onset), aware_utc(now)
    before, after = comparison_windows(onset, now, lookback)
    route_before = stat_value(stats_for(session, route, before.start, before.end), stat)
    route_after = stat_value(stats_for(session, route, after.start, after.end), stat)
    route_move = change(stat, route_before, route_after)
    blast = BlastRadius(route, stat, onset, before, after, route_before, route_after,
                        values=_values(session, route, stat, before, after, route_move,
                                       route_before))
    others = busiest_routes(session, since=onset, now=now, exclude=route, limit=max_routes)
    other_lookback = min(lookback, (now - onset) + OTHER_LOOKBACK)
    for other in others:
        found = _route_move(detect(session, other, now=now, lookback=other_lookback), other,
                            stat, onset)
        if found is not None:
            blast.routes.append(found)
    blast.routes_examined = len(others)
    return blast

