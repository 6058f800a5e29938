"""Hour rollups: `event_rollups_hourly` rows merged from the minute rows of each (route, hour).

An hour row is recomputed (deleted and written anew) from every minute row of its hour whenever
one of those minutes is rewritten, in the same transaction (`rebuild_hours`, called by the rollup
job): so an hour row always equals the sum of its minute rows — counts and sums exact, sketches
merged bucket by bucket (no accuracy lost: the same buckets the minutes hold). Queries take whole
hours from here and the minutes at the hour edges from `event_rollups` (`metrics.rollup_stats`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from llm_incident.metrics.percentiles import raw_rows
from llm_incident.rollups.models import MAX_GROUPS, OTHER_MODEL, EventRollup, EventRollupHour
from llm_incident.rollups.sketch import Merged

HOUR = timedelta(hours=1)
M = EventRollup.__table__
H = EventRollupHour.__table__
_SUMMED = ("calls", "flagged", "errors", "retries", "priced", "cost_usd", "n_tokens_in",
           "sum_tokens_in", "n_tokens_out", "sum_tokens_out")
_SKETCHES = ("duration_sketch", "tokens_in_sketch", "tokens_out_sketch")
_READ = (M.c.minute, M.c.env, M.c.model, *(M.c[name] for name in _SUMMED), M.c.error_codes,
         *(M.c[name] for name in _SKETCHES))


def floor_hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def ceil_hour(value: datetime) -> datetime:
    floor = floor_hour(value)
    return floor if floor == value else floor + HOUR


def hour_of(stored: Any) -> datetime:
    """The hour of a `minute` value as the DBAPI returns it (SQLite: its stored text)."""
    if isinstance(stored, str):
        return datetime(int(stored[:4]), int(stored[5:7]), int(stored[8:10]), int(stored[11:13]),
                        tzinfo=timezone.utc)
    return floor_hour(stored.astimezone(timezone.utc))


@dataclass
class HourGroup:
    """One (hour, env, model)'s minute rows added up."""

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

    def absorb(self, other: HourGroup) -> None:
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


def _bounded(groups: dict[tuple[str, str | None], HourGroup]) -> dict[tuple[str, str | None], HourGroup]:
    """At most MAX_GROUPS (env, model) groups per hour: the smallest fold into (env, OTHER_MODEL)."""
    if len(groups) <= MAX_GROUPS:
        return groups
    ranked = sorted(groups.items(), key=lambda kv: -kv[1].sums[0])
    kept = dict(ranked[:MAX_GROUPS - 1])
    for (env, _model), group in ranked[MAX_GROUPS - 1:]:
        kept.setdefault((env, OTHER_MODEL), HourGroup()).absorb(group)
    return kept


def hour_rows(session: Session, route: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The hour rows of `route`'s hours in `[start, end)` (hour-aligned), from its minute rows."""
    hours: dict[datetime, dict[tuple[str, str | None], HourGroup]] = defaultdict(dict)
    stmt = select(*_READ).where(M.c.route == route, M.c.minute >= start, M.c.minute < end)
    width = len(_SUMMED)
    for minute, env, model, *rest in raw_rows(session, stmt):
        groups = hours[hour_of(minute)]
        group = groups.get((env, model))
        if group is None:
            group = groups[(env, model)] = HourGroup()
        group.add(rest[:width], rest[width], rest[width + 1:])
    return [g.row(route, hour, env, model) for hour, groups in sorted(hours.items())
            for (env, model), g in _bounded(groups).items()]


def rebuild_hours(session: Session, route: str, start: datetime, end: datetime) -> int:
    """Rewrite the hour rows of every hour that `[start, end)` touches from its minute rows (in
    the caller's write transaction, after the minutes were written); how many rows it wrote."""
    first, last = floor_hour(start), ceil_hour(end)
    rows = hour_rows(session, route, first, last)
    session.execute(delete(H).where(H.c.route == route, H.c.minute >= first, H.c.minute < last))
    if rows:
        session.execute(insert(H), rows)
    return len(rows)


def rebuild_all_hours(session: Session, *, span: timedelta = timedelta(days=7)) -> int:
    """Hour rows for every minute row stored (the migration that adds the table), `span` of one
    route's minutes read at a time; how many rows it wrote."""
    written = 0
    routes = session.execute(select(M.c.route).distinct()).scalars().all()
    for route in routes:
        bounds = session.execute(select(M.c.minute).where(M.c.route == route)
                                 .order_by(M.c.minute).limit(1)).scalar()
        newest = session.execute(select(M.c.minute).where(M.c.route == route)
                                 .order_by(M.c.minute.desc()).limit(1)).scalar()
        at, stop = floor_hour(_aware(bounds)), _aware(newest) + HOUR
        while at < stop:
            written += rebuild_hours(session, route, at, min(at + span, stop))
            at += span
    return written


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def purge_hours(session: Session, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` hour rows of hours that end by `cutoff` (minute rows of a later
    hour's first part may be gone by then: that hour goes next time); how many."""
    ids = list(session.execute(select(H.c.id).where(H.c.minute <= cutoff - HOUR)
                               .order_by(H.c.minute).limit(limit)).scalars())
    if ids:
        session.execute(delete(H).where(H.c.id.in_(ids)))
    return len(ids)
