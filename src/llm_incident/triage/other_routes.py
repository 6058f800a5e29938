"""Which other routes moved at the same onset: the candidates (the route registry, else the
busiest by a scan) and a cheap screen of their rates, means and calls/min across the onset, so
only the routes that moved go through the shift detector (`triage.blast`)."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, desc, func, select
from sqlalchemy.orm import Session

from llm_incident.events.routes import KnownRoute
from llm_incident.metrics.scope import C, IS_ERROR, IS_FLAGGED

SCREEN_SPAN = timedelta(minutes=20)
SCREEN_MIN_BEFORE, SCREEN_MIN_AFTER = 30, 10  # calls each side of the onset
SCREEN_POINTS, SCREEN_RATIO = 0.02, 1.15  # a rate moved 2 pts, a mean or calls/min 15 %


def busiest_routes(session: Session, *, since: datetime, now: datetime, exclude: str,
                   limit: int) -> list[str]:
    """The `limit` routes with the most calls in `[since, now)`, other than `exclude`."""
    calls = func.count()
    rows = session.execute(
        select(C.route, calls).where(C.ts >= since, C.ts < now, C.route != exclude)
        .group_by(C.route).order_by(desc(calls), C.route).limit(limit)
    ).all()
    return [route for route, _ in rows]


def candidate_routes(session: Session, *, route: str, onset: datetime, now: datetime,
                     limit: int) -> list[str]:
    """Other routes with traffic since the onset: the route registry when it lists at most
    `limit` of them (no scan), else the `limit` busiest by a scan of the events."""
    if limit <= 0:
        return []
    alive = list(session.execute(
        select(KnownRoute.route).where(KnownRoute.last_seen >= onset, KnownRoute.route != route)
        .order_by(KnownRoute.route).limit(limit + 1)).scalars())
    if alive and len(alive) <= limit:
        return alive
    return busiest_routes(session, since=onset, now=now, exclude=route, limit=limit)


def _screen_statement(routes: list[str], start: datetime, onset: datetime,
                      end: datetime) -> Any:
    inner = select(
        C.route, case((C.ts >= onset, 1), else_=0).label("side"),
        case((IS_FLAGGED, 1), else_=0).label("flagged"),
        case((IS_ERROR, 1), else_=0).label("error"),
        case((C.attempt > 1, 1), else_=0).label("retry"),
        C.tokens_out, C.duration_ms, case((C.priced, C.cost_usd)).label("cost"),
    ).where(C.route.in_(routes), C.ts >= start, C.ts < end).subquery()
    c = inner.c
    return (select(c.route, c.side, func.count(), func.sum(c.flagged), func.sum(c.error),
                   func.sum(c.retry), func.avg(c.tokens_out), func.avg(c.duration_ms),
                   func.avg(c.cost))
            .group_by(c.route, c.side))


def screen_routes(session: Session, routes: list[str], *, onset: datetime,
                  now: datetime) -> list[str]:
    """The routes whose cheap stats (rates, means, calls/min) moved across the onset, over
    `SCREEN_SPAN` either side, in one grouped query; strongest move first. Only these go
    through the detector."""
    if not routes:
        return []
    end = min(now, onset + SCREEN_SPAN)
    minutes = (SCREEN_SPAN.total_seconds() / 60, (end - onset).total_seconds() / 60)
    sides: dict[str, dict[int, tuple[Any, ...]]] = defaultdict(dict)
    for row in session.execute(_screen_statement(routes, onset - SCREEN_SPAN, onset, end)):
        sides[row[0]][int(row[1])] = tuple(row[2:])
    strength: dict[str, float] = {}
    for name, by_side in sides.items():
        before, after = by_side.get(0), by_side.get(1)
        if before is None or after is None or before[0] < SCREEN_MIN_BEFORE \
                or after[0] < SCREEN_MIN_AFTER:
            continue
        moves = [abs(after[i] / after[0] - before[i] / before[0]) / SCREEN_POINTS
                 for i in (1, 2, 3)]
        for i in (4, 5, 6):
            if before[i] and after[i]:
                moves.append(abs(math.log(float(after[i]) / float(before[i])))
                             / math.log(SCREEN_RATIO))
        if minutes[1]:
            moves.append(abs(math.log((after[0] / minutes[1]) / (before[0] / minutes[0])))
                         / math.log(SCREEN_RATIO))
        if max(moves) >= 1:
            strength[name] = max(moves)
    return sorted(strength, key=lambda r: (-strength[r], r))
