"""Retention of raw events: delete those older than the cutoff in bounded batches.

Each batch is its own short write transaction (at most `batch` rows), so ingest waits at most
one batch for the write lock and never for the whole purge. On SQLite, which has one writer,
the pause after a batch is also `SQLITE_YIELD` times the batch's own time: the purge holds the
write lock at most a quarter of the time, and ingest keeps the rest. Events attached to an
incident as evidence are kept whatever their age, so a postmortem never loses its examples. On SQLite the
freed pages are reused by later inserts; a file created with `auto_vacuum=INCREMENTAL` also
gives them back to the disk, a few pages after each batch. On PostgreSQL with a partitioned
`events` table whole days are dropped (`scheduler.partitions`) and the storage job runs this
delete on the default partition only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import column, delete, select, table

from llm_incident.db import Database
from llm_incident.events.models import Event
from llm_incident.evidence.models import Evidence

BATCH_ROWS = 5_000
MAX_BATCHES = 40  # per run: 200 k rows; the next run goes on
_INCREMENTAL = 2  # PRAGMA auto_vacuum value
_VACUUM_PAGES = 2_000
PAUSE_SECONDS = 0.05  # between batches: ingest gets the write lock and the CPU in between
SQLITE_YIELD = 3.0    # on SQLite (one writer) the pause is also this × the batch's own time


@dataclass(frozen=True)
class PurgeResult:
    deleted: int
    batches: int
    done: bool  # False: rows older than the cutoff remain (the next run goes on)


def _source(name: str | None):
    """The `events` table, or one of its partitions by name (the columns this module uses)."""
    if name is None:
        return Event.__table__
    return table(name, column("id"), column("ts"), column("event_id"))


def _batch_ids(source, cutoff: datetime, batch: int, up_to_id: int | None):
    """The ids of the oldest `batch` events before `cutoff` that are not evidence."""
    kept = select(Evidence.event_id)
    c = source.c
    stmt = select(c.id).where(c.ts < cutoff, c.event_id.not_in(kept))
    if up_to_id is not None:
        stmt = stmt.where(c.id <= up_to_id)
    return stmt.order_by(c.ts).limit(batch)


def purge_events(db: Database, cutoff: datetime, *, up_to_id: int | None = None,
                 batch: int = BATCH_ROWS, max_batches: int = MAX_BATCHES,
                 pause: float = PAUSE_SECONDS, partition: str | None = None) -> PurgeResult:
    """Delete events with `ts < cutoff` that are not evidence, `batch` rows per transaction,
    at least `pause` seconds apart (on SQLite also `SQLITE_YIELD` × the batch's own time; 0:
    no pause at all); `up_to_id`: only ids up to it (those already rolled up); `partition`:
    only in that partition of a partitioned table (the default one: day partitions go whole)."""
    source = _source(partition)
    deleted = batches = 0
    while batches < max_batches:
        started = time.monotonic()
        with db.write() as session:  # one statement: no ids through Python, no 5,000 binds
            gone = session.execute(delete(source).where(
                source.c.id.in_(_batch_ids(source, cutoff, batch, up_to_id)))).rowcount
        if not gone:
            return PurgeResult(deleted, batches, True)
        deleted += gone
        batches += 1
        _reclaim_sqlite_pages(db)
        if gone < batch:
            return PurgeResult(deleted, batches, True)
        took = time.monotonic() - started
        time.sleep(max(pause, SQLITE_YIELD * took) if db.is_sqlite and pause else pause)
    return PurgeResult(deleted, batches, False)


def _reclaim_sqlite_pages(db: Database) -> None:
    """Give freed pages back to the file system when the file allows it (incremental vacuum)."""
    if not db.is_sqlite:
        return
    with db.engine.connect() as conn:
        if conn.exec_driver_sql("PRAGMA auto_vacuum").scalar() == _INCREMENTAL:
            conn.exec_driver_sql(f"PRAGMA incremental_vacuum({_VACUUM_PAGES})").all()
        conn.commit()
