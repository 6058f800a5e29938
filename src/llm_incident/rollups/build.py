"""The rollup job: keep `event_rollups` (and from it `event_rollups_hourly` and
`event_rollups_daily`, `rollups.hours`) in step with the events, never more than a run behind.

Each run reads the ids stored since its last run (`rollup_state.last_id`), and recomputes from the
raw events every (route, minute) those new events fall in: deletes that minute's rollup rows and
writes them anew, then rewrites those minutes' hour rows from their minute rows and those hours' day
rows from their hour rows in the same transaction (so a late event that re-rolls a minute re-rolls
its hour and its day). Recomputing (not adding)
makes a run idempotent, so a minute seen twice, a late event for an old minute or a duplicate run
never double-counts. The reading happens outside the
write transaction; the write is one short transaction per batch.

An id is taken as done only once its event was received `SETTLE` ago: on PostgreSQL a slow
transaction may commit a lower id after a higher one was read, and such ids are read again next
run. Minutes older than the raw-event retention are frozen (their raw events are gone).
`complete_until` (minute) says up to where rollups hold every event received by the last run.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from sqlalchemy import case, delete, func, insert, literal_column, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from llm_incident.db import Database
from llm_incident.events.models import Event
from llm_incident.metrics.percentiles import raw_rows
from llm_incident.rollups.hours import purge_coarser, rebuild_coarser
from llm_incident.rollups.models import MAX_GROUPS, OTHER_MODEL, EventRollup, RollupState
from llm_incident.rollups.sketch import encode

SETTLE = timedelta(seconds=30)
SCAN_BATCH = 50_000
MAX_BATCHES = 20  # per run (a backfill goes on next run)
STATE = "events"
JOIN_GAP = timedelta(hours=1)
_MINUTE = timedelta(minutes=1)
C = Event.__table__.c
R = EventRollup.__table__


def floor_minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def minute_text(dialect: str, ts: ColumnElement[Any]) -> ColumnElement[str]:
    """`ts` cut to its minute as text 'YYYY-MM-DD HH:MM' (UTC), on either backend."""
    if dialect == "sqlite":
        return func.substr(ts, 1, 16)
    return func.to_char(func.date_trunc("minute", ts.op("AT TIME ZONE")(literal_column("'UTC'"))),
                        "YYYY-MM-DD HH24:MI")


@lru_cache(maxsize=4096)
def _parse_minute(text: str) -> datetime:
    return datetime(int(text[:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]),
                    int(text[14:16]), tzinfo=timezone.utc)


@dataclass
class MinuteGroup:
    calls: int = 0
    flagged: int = 0
    errors: int = 0
    retries: int = 0
    priced: int = 0
    cost: float = 0.0
    codes: dict[str, int] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)
    tokens_in: list[int] = field(default_factory=list)
    tokens_out: list[int] = field(default_factory=list)

    def add_row(self, status, banned, code, attempt, priced, cost, t_in, t_out, duration) -> None:
        self.calls += 1
        if status == "flagged" or banned:
            self.flagged += 1
        if status == "error" or code is not None:
            self.errors += 1
            name = code if code is not None else "unknown"
            self.codes[name] = self.codes.get(name, 0) + 1
        if attempt > 1:
            self.retries += 1
        if priced:
            self.priced += 1
            self.cost += cost or 0.0
        if t_in is not None:
            self.tokens_in.append(t_in)
        if t_out is not None:
            self.tokens_out.append(t_out)
        if duration is not None:
            self.durations.append(duration)

    def absorb(self, other: MinuteGroup) -> None:
        for name in ("calls", "flagged", "errors", "retries", "priced", "cost"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for code, count in other.codes.items():
            self.codes[code] = self.codes.get(code, 0) + count
        self.durations += other.durations
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out

    def row(self, route: str, minute: datetime, env: str, model: str | None) -> dict[str, Any]:
        return {
            "route": route, "minute": minute, "env": env, "model": model, "calls": self.calls,
            "flagged": self.flagged, "errors": self.errors, "retries": self.retries,
            "priced": self.priced, "cost_usd": self.cost,
            "n_tokens_in": len(self.tokens_in), "sum_tokens_in": sum(self.tokens_in),
            "n_tokens_out": len(self.tokens_out), "sum_tokens_out": sum(self.tokens_out),
            "error_codes": self.codes,
            "duration_sketch": encode(self.durations) if self.durations else None,
            "tokens_in_sketch": encode(self.tokens_in) if self.tokens_in else None,
            "tokens_out_sketch": encode(self.tokens_out) if self.tokens_out else None,
        }


def _bounded(groups: dict[tuple[str, str | None], MinuteGroup]) -> dict[tuple[str, str | None], MinuteGroup]:
    """At most MAX_GROUPS (env, model) groups: the smallest fold into (env, OTHER_MODEL)."""
    if len(groups) <= MAX_GROUPS:
        return groups
    ranked = sorted(groups.items(), key=lambda kv: -kv[1].calls)
    kept = dict(ranked[:MAX_GROUPS - 1])
    for (env, _model), group in ranked[MAX_GROUPS - 1:]:
        kept.setdefault((env, OTHER_MODEL), MinuteGroup()).absorb(group)
    return kept


def rollup_rows(session: Session, route: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The rollup rows of `route`'s minutes in `[start, end)` (minute-aligned), from raw events."""
    dialect = session.get_bind().dialect.name
    stmt = (select(minute_text(dialect, C.ts), C.env, C.model, C.status, C.contains_banned,
                   C.error_code, C.attempt, C.priced, C.cost_usd, C.tokens_in, C.tokens_out,
                   C.duration_ms)
            .where(C.route == route, C.ts >= start, C.ts < end))
    minutes: dict[str, dict[tuple[str, str | None], MinuteGroup]] = defaultdict(dict)
    for minute, env, model, *values in raw_rows(session, stmt):  # numbers and text only
        groups = minutes[minute]
        group = groups.get((env, model))
        if group is None:
            group = groups[(env, model)] = MinuteGroup()
        group.add_row(*values)
    rows = []
    for minute, groups in minutes.items():
        at = _parse_minute(minute)
        rows += [g.row(route, at, env, model) for (env, model), g in _bounded(groups).items()]
    return rows


def _ranges(minutes: set[datetime]) -> list[tuple[datetime, datetime]]:
    """`[start, end)` ranges covering the minutes, those less than `JOIN_GAP` apart in one (a
    range is read and rewritten whole, so a minute without events in it just gets no rows)."""
    out: list[tuple[datetime, datetime]] = []
    for minute in sorted(minutes):
        if out and minute - out[-1][1] < JOIN_GAP:
            out[-1] = (out[-1][0], minute + _MINUTE)
        else:
            out.append((minute, minute + _MINUTE))
    return out


@dataclass(frozen=True)
class RollupRun:
    events: int  # new events read
    minutes: int  # (route, minute) pairs recomputed
    caught_up: bool


def _state(session: Session) -> RollupState | None:
    """The rollups' state row, held by the session (its identity map keeps objects only while
    something refers to them): every window an evaluation reads asks for it, and the second ask
    in a transaction costs no statement (an alert run of 200 routes sent 1,500 of them)."""
    state = session.get(RollupState, STATE)
    session.info["rollup_state"] = state
    return state


def roll_up(db: Database, now: datetime, *, frozen_before: datetime | None = None,
            batch: int = SCAN_BATCH, max_batches: int = MAX_BATCHES) -> RollupRun:
    """Bring the rollups up to the events stored by `now`; `frozen_before`: minutes before it are
    left as they are (their raw events are past retention)."""
    events = minutes = 0
    for _ in range(max_batches):
        read, touched, caught_up = _one_batch(db, now, frozen_before, batch)
        events, minutes = events + read, minutes + touched
        if caught_up:
            return RollupRun(events, minutes, True)
    return RollupRun(events, minutes, False)


def _one_batch(db: Database, now: datetime, frozen_before: datetime | None,
               batch: int) -> tuple[int, int, bool]:
    settled = now - SETTLE
    with db.read() as session:
        state = _state(session)
        last_id = state.last_id if state is not None else 0
        dialect = session.get_bind().dialect.name
        scanned = raw_rows(session, select(
            C.id, C.route, minute_text(dialect, C.ts),
            case((C.received_at < settled, 1), else_=0))
            .where(C.id > last_id).order_by(C.id).limit(batch))
        done_id = last_id
        for event_id, _route, _minute, is_settled in scanned:
            if not is_settled:
                break
            done_id = event_id
        touched: dict[str, set[datetime]] = defaultdict(set)
        for _id, route, minute, _received in scanned:
            touched[route].add(_parse_minute(minute))
        if frozen_before is not None:
            _drop_frozen(session, touched, frozen_before)
        plan = [(route, start, end, rollup_rows(session, route, start, end))
                for route, mins in touched.items() for start, end in _ranges(mins)]
    caught_up = len(scanned) < batch
    with db.write() as session:
        for route, start, end, rows in plan:
            session.execute(delete(R).where(R.c.route == route, R.c.minute >= start,
                                            R.c.minute < end))
            if rows:
                session.execute(insert(R), rows)
            rebuild_coarser(session, route, start, end)  # its hours and days, from these minutes
        state = _state(session)
        if state is None:
            state = RollupState(name=STATE, last_id=0, updated_at=now)
            session.add(state)
        state.last_id = max(state.last_id, done_id)
        if caught_up:
            state.complete_until = floor_minute(settled)
        state.updated_at = now
    return len(scanned), sum(len(m) for m in touched.values()), caught_up


def _drop_frozen(session: Session, touched: dict[str, set[datetime]], before: datetime) -> None:
    """Leave out minutes before `before` that already have rollup rows: their raw events may be
    partly deleted. (One without rows never had any event deleted: retention deletes only rolled
    up ids, so it is recomputed, e.g. old events of a database that had no rollups yet.)"""
    for route, minutes in touched.items():
        frozen = {m for m in minutes if m < before}
        if not frozen:
            continue
        existing = session.execute(
            select(R.c.minute).where(R.c.route == route, R.c.minute >= min(frozen),
                                     R.c.minute <= max(frozen)).distinct()).scalars()
        minutes -= set(existing) & frozen


def rolled_up_to(session: Session) -> int:
    """Events with ids up to this are rolled up (0: none yet)."""
    state = _state(session)
    return 0 if state is None else state.last_id


def complete_until(session: Session) -> datetime | None:
    """Minutes before this are fully rolled up (None: the job has not caught up yet)."""
    state = _state(session)
    return None if state is None else state.complete_until


def purge_rollups(db: Database, cutoff: datetime, *, batch: int = 20_000,
                  max_batches: int = 20) -> int:
    """Delete rollup rows of minutes before `cutoff` and of hours and days ending by it, `batch`
    rows per transaction (minutes first, then hours, then days); how many rows of any."""
    deleted = 0
    for _ in range(max_batches):
        with db.write() as session:
            ids = list(session.execute(select(R.c.id).where(R.c.minute < cutoff)
                                       .order_by(R.c.minute).limit(batch)).scalars())
            if ids:
                session.execute(delete(R).where(R.c.id.in_(ids)))
            count = len(ids)
            if count < batch:
                count += purge_coarser(session, cutoff, batch - count)
        deleted += count
        if count < batch:
            break
    return deleted
