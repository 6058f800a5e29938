"""Hour and day rollups: `event_rollups_hourly` rows merged from the minute rows of each (route,
hour), `event_rollups_daily` rows from the hour rows of each (route, UTC day).

A coarser row is recomputed (deleted and written anew) from every finer row of its period whenever
one of those is rewritten, in the same transaction (`rebuild_coarser`, called by the rollup job
after it writes minutes: their hours, then those hours' days): so a row always equals the sum of
the rows below it — counts and sums exact, sketches merged bucket by bucket (no accuracy lost: the
same buckets the minutes hold). Queries take whole days from day rows, whole hours at the day
edges from hour rows and the minutes at the hour edges from `event_rollups`
(`metrics.rollup_stats`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.orm import Session

from llm_incident.metrics.percentiles import raw_rows
from llm_incident.rollups.models import (MAX_GROUPS, OTHER_MODEL, EventRollup, EventRollupDay,
                                         EventRollupHour)
from llm_incident.rollups.sketch import Merged

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
M = EventRollup.__table__
H = EventRollupHour.__table__
D = EventRollupDay.__table__
_SUMMED = ("calls", "flagged", "errors", "retries", "priced", "cost_usd", "n_tokens_in",
           "sum_tokens_in", "n_tokens_out", "sum_tokens_out")
_SKETCHES = ("duration_sketch", "tokens_in_sketch", "tokens_out_sketch")


def floor_hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def _ceil(value: datetime, floor: Callable[[datetime], datetime], period: timedelta) -> datetime:
    low = floor(value)
    return low if low == value else low + period


def ceil_hour(value: datetime) -> datetime:
    return _ceil(value, floor_hour, HOUR)


def floor_day(value: datetime) -> datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def ceil_day(value: datetime) -> datetime:
    return _ceil(value, floor_day, DAY)


def hour_of(stored: Any) -> datetime:
    """The hour of a `minute` value as the DBAPI returns it (SQLite: its stored text)."""
    if isinstance(stored, str):
        return datetime(int(stored[:4]), int(stored[5:7]), int(stored[8:10]), int(stored[11:13]),
                        tzinfo=timezone.utc)
    return floor_hour(stored.astimezone(timezone.utc))


def day_of(stored: Any) -> datetime:
    """The UTC day of a `minute` value as the DBAPI returns it."""
    return floor_day(hour_of(stored))


@dataclass(frozen=True)
class Level:
    """A coarser rollup table (`target`) whose rows add up the `source` rows of one period."""

    source: Table
    target: Table
    period: timedelta
    floor: Callable[[datetime], datetime]
    of: Callable[[Any], datetime]  # the period of a stored `minute` value

    def ceil(self, value: datetime) -> datetime:
        return _ceil(value, self.floor, self.period)


HOURS = Level(M, H, HOUR, floor_hour, hour_of)
DAYS = Level(H, D, DAY, floor_day, day_of)


@dataclass
class PeriodGroup:
    """One period's rows of one (env, model) added up."""

    sums: list[float] = field(default_factory=lambda: [0] * len(_SUMMED))
    codes: dict[str, int] = field(default_factory=dict)
    sketches: list[Merged] = field(default_factory=lambda: [Merged() for _ in _SKETCHES])

    def add(self, sums: tuple, codes: Any, sketches: tuple) -> None:
        for i, value in enumerate(sums):
            self.sums[i] += value or 0
        if codes:
            for code, count in (codes if isinstance(codes, dict) else json.loads(codes)).items():
                self.codes[code] = self.codes.get(code, 0) + count
        for merged, blob in zip(self.sketches, sketches, strict=True):
            merged.add(blob)

    def absorb(self, other: PeriodGroup) -> None:
        for i, value in enumerate(other.sums):
            self.sums[i] += value
        for code, count in other.codes.items():
            self.codes[code] = self.codes.get(code, 0) + count
        for mine, theirs in zip(self.sketches, other.sketches, strict=True):
            mine.absorb(theirs)

    def row(self, route: str, hour: datetime, env: str, model: str | None) -> dict[str, Any]:
        row: dict[str, Any] = {"route": route, "minute": hour, "env": env, "model": model,
                               "error_codes": self.codes}
        for name, value in zip(_SUMMED, self.sums, strict=True):
            row[name] = float(value) if name == "cost_usd" else int(value)
        for name, merged in zip(_SKETCHES, self.sketches, strict=True):
            row[name] = merged.encoded()
        return row


def _bounded(groups: dict[tuple[str, str | None], PeriodGroup]) -> dict[tuple[str, str | None], PeriodGroup]:
    """At most MAX_GROUPS (env, model) groups per period: the smallest fold into (env, OTHER_MODEL)."""
    if len(groups) <= MAX_GROUPS:
        return groups
    ranked = sorted(groups.items(), key=lambda kv: -kv[1].sums[0])
    kept = dict(ranked[:MAX_GROUPS - 1])
    for (env, _model), group in ranked[MAX_GROUPS - 1:]:
        kept.setdefault((env, OTHER_MODEL), PeriodGroup()).absorb(group)
    return kept


def period_rows(session: Session, level: Level, route: str, start: datetime, end: datetime
                ) -> list[dict[str, Any]]:
    """The `level` rows of `route`'s periods in `[start, end)` (period-aligned), from the rows
    of its source table."""
    src = level.source.c
    periods: dict[datetime, dict[tuple[str, str | None], PeriodGroup]] = defaultdict(dict)
    stmt = select(src.minute, src.env, src.model, *(src[name] for name in _SUMMED),
                  src.error_codes, *(src[name] for name in _SKETCHES)
                  ).where(src.route == route, src.minute >= start, src.minute < end)
    width = len(_SUMMED)
    for minute, env, model, *rest in raw_rows(session, stmt):
        groups = periods[level.of(minute)]
        group = groups.get((env, model))
        if group is None:
            group = groups[(env, model)] = PeriodGroup()
        group.add(rest[:width], rest[width], rest[width + 1:])
    return [g.row(route, period, env, model) for period, groups in sorted(periods.items())
            for (env, model), g in _bounded(groups).items()]


def rebuild(session: Session, level: Level, route: str, start: datetime, end: datetime) -> int:
    """Rewrite the `level` rows of every period that `[start, end)` touches from its source rows
    (in the caller's write transaction, after those were written); how many rows it wrote."""
    first, last = level.floor(start), level.ceil(end)
    rows = period_rows(session, level, route, first, last)
    t = level.target.c
    session.execute(delete(level.target).where(t.route == route, t.minute >= first,
                                               t.minute < last))
    if rows:
        session.execute(insert(level.target), rows)
    return len(rows)


def rebuild_coarser(session: Session, route: str, start: datetime, end: datetime) -> int:
    """The hour rows `[start, end)` touches, then the day rows of those hours (after the minute
    rows of `[start, end)` were rewritten); how many rows it wrote."""
    return (rebuild(session, HOURS, route, start, end)
            + rebuild(session, DAYS, route, floor_hour(start), ceil_hour(end)))


def rebuild_all(session: Session, level: Level, *, span: timedelta = timedelta(days=7)) -> int:
    """`level` rows for every source row stored (the migration that adds its table), `span` of
    one route's source rows read at a time; how many rows it wrote."""
    src = level.source.c
    written = 0
    routes = session.execute(select(src.route).distinct()).scalars().all()
    for route in routes:
        oldest = session.execute(select(src.minute).where(src.route == route)
                                 .order_by(src.minute).limit(1)).scalar()
        newest = session.execute(select(src.minute).where(src.route == route)
                                 .order_by(src.minute.desc()).limit(1)).scalar()
        at, stop = level.floor(_aware(oldest)), _aware(newest) + level.period
        while at < stop:
            written += rebuild(session, level, route, at, min(at + span, stop))
            at += span
    return written


def rebuild_all_hours(session: Session, *, span: timedelta = timedelta(days=7)) -> int:
    """Hour rows for every minute row stored (migration 0016)."""
    return rebuild_all(session, HOURS, span=span)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def purge_coarser(session: Session, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` hour and day rows of periods that end by `cutoff` (hours first;
    finer rows of a later period's first part may be gone by then: that period goes next
    time); how many."""
    deleted = 0
    for level in (HOURS, DAYS):
        t = level.target.c
        ids = list(session.execute(select(t.id).where(t.minute <= cutoff - level.period)
                                   .order_by(t.minute).limit(limit - deleted)).scalars())
        if ids:
            session.execute(delete(level.target).where(t.id.in_(ids)))
        deleted += len(ids)
        if deleted >= limit:
            break
    return deleted
