"""The storage job's partition step (PostgreSQL with a partitioned `events` table): day partitions
exist ahead of time (today and the next `AHEAD_DAYS`), and whole days past retention are dropped,
each day in its own short transaction. A no-op on SQLite or an unpartitioned table."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from llm_incident.db import Database
from llm_incident.events.partitions import (NotRolledUp, days_ahead, drop_day, droppable,
                                            ensure_partitions, is_partitioned)

LOCK_TIMEOUT = "2s"  # DDL waits this long for the table's lock, then the next run tries again
_LOCK_NOT_AVAILABLE = "55P03"
log = logging.getLogger("llm_incident.partitions")


@dataclass(frozen=True)
class PartitionRun:
    created: tuple[date, ...] = ()
    dropped: tuple[date, ...] = ()
    kept: int = 0  # evidence events copied out of dropped days into the default partition
    partitioned: bool = False  # False: SQLite or a plain table, nothing was done


def partitioned(db: Database) -> bool:
    if db.is_sqlite:
        return False
    with db.engine.connect() as conn:
        return is_partitioned(conn)


def _busy(exc: OperationalError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE


def keep_partitions(db: Database, now: datetime, cutoff: datetime, up_to_id: int | None) -> PartitionRun:
    """Create the partitions ahead of `now`; drop day partitions wholly before `cutoff` whose
    events are rolled up (ids ≤ `up_to_id`), keeping their evidence events. A lock not granted
    within LOCK_TIMEOUT skips that step until the next run."""
    if not partitioned(db):
        return PartitionRun()
    created: list[date] = []
    try:
        with db.write() as session:
            conn = session.connection()
            conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            created = ensure_partitions(conn, days_ahead(now))
    except OperationalError as exc:
        if not _busy(exc):
            raise
        log.warning("partitions ahead: the events table is busy; the next run tries again")
    with db.read() as session:
        todo = droppable(session.connection(), cutoff, up_to_id)
    dropped, kept = [], 0
    for day, name in todo:
        try:
            with db.write() as session:
                conn = session.connection()
                conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                kept += drop_day(conn, name, up_to_id)
        except NotRolledUp:
            continue
        except OperationalError as exc:
            if not _busy(exc):
                raise
            log.warning("dropping %s: the events table is busy; the next run tries again", name)
            break
        dropped.append(day)
    return PartitionRun(tuple(created), tuple(dropped), kept, True)
