"""PostgreSQL: the `events` table partitioned by day (declarative `PARTITION BY RANGE (ts)`).

One partition per UTC day (`events_pYYYYMMDD`) plus `events_default`, so an insert never fails
whatever its timestamp. The primary key is `(id, ts)` and event ids are unique per `(event_id, ts)`
(a partitioned table's unique keys must hold the partition key); `id` still comes from the one
sequence, and lookups by `id` or `event_id` use those keys' leading column. Nothing references
`events.id` (evidence keeps the public `event_id` as text). SQLite keeps one table: every function
here is a no-op there.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import Connection, text

TABLE = "events"
OLD = "events_unpartitioned"
DEFAULT = "events_default"
AHEAD_DAYS = 3  # partitions exist for today and the next 3 days
BACKFILL_DAYS = 400  # the conversion gives older days' rows to the default partition
COPY_BATCH = 100_000
_PREFIX = "events_p"


def partition_name(day: date) -> str:
    return f"{_PREFIX}{day:%Y%m%d}"


def day_of(name: str) -> date | None:
    """The day a partition holds, from its name (None: the default partition or another table)."""
    if not name.startswith(_PREFIX):
        return None
    try:
        return datetime.strptime(name[len(_PREFIX):], "%Y%m%d").date()
    except ValueError:
        return None


def _start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=timezone.utc)


def is_partitioned(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return conn.execute(text(
        "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(:t))"
    ), {"t": TABLE}).scalar()


def day_partitions(conn: Connection) -> dict[date, str]:
    """The day partitions attached to `events`, by day."""
    names = conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:t)"), {"t": TABLE}).scalars()
    return {d: n for n in names if (d := day_of(n)) is not None}


def ensure_partitions(conn: Connection, days: Iterable[date]) -> list[date]:
    """Create the missing day partitions among `days` (rows of such a day that sit in the default
    partition move into it); the days created. Idempotent; a no-op unless partitioned."""
    if not is_partitioned(conn):
        return []
    have = day_partitions(conn)
    created = []
    for day in sorted(set(days) - set(have)):
        _create_day(conn, day)
        created.append(day)
    return created


def _create_day(conn: Connection, day: date) -> None:
    lo, hi = _start(day), _start(day + timedelta(days=1))
    bounds = {"lo": lo, "hi": hi}
    name = partition_name(day)
    stray = conn.execute(text(f"SELECT EXISTS (SELECT 1 FROM {DEFAULT} WHERE ts >= :lo AND ts < :hi)"),
                         bounds).scalar()
    if stray:  # the new partition's range must be empty in the default partition
        conn.execute(text(
            f"CREATE TEMP TABLE moving_events ON COMMIT DROP AS WITH m AS ("
            f"DELETE FROM {DEFAULT} WHERE ts >= :lo AND ts < :hi RETURNING *) SELECT * FROM m"), bounds)
    conn.execute(text(f"CREATE TABLE {name} PARTITION OF {TABLE} "
                      f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"))
    if stray:
        conn.execute(text(f"INSERT INTO {TABLE} SELECT * FROM moving_events"))
        conn.execute(text("DROP TABLE moving_events"))


def days_ahead(now: datetime, ahead: int = AHEAD_DAYS) -> list[date]:
    today = now.astimezone(timezone.utc).date()
    return [today + timedelta(days=i) for i in range(ahead + 1)]


class NotRolledUp(Exception):
    """A detached day still holds events the rollup job has not read: roll the transaction back."""


def drop_day(conn: Connection, name: str, up_to_id: int | None = None) -> int:
    """Detach and drop one day partition; its events attached to an incident as evidence are first
    copied back into `events` (they land in the default partition). How many were kept. Raises
    NotRolledUp (after the detach: nothing can arrive any more) when an id is above `up_to_id`."""
    conn.execute(text(f"ALTER TABLE {TABLE} DETACH PARTITION {name}"))
    if up_to_id is not None:
        top = conn.execute(text(f"SELECT max(id) FROM {name}")).scalar()
        if top is not None and top > up_to_id:
            raise NotRolledUp(name)
    kept = conn.execute(text(
        f"INSERT INTO {TABLE} SELECT * FROM {name} p "
        f"WHERE p.event_id IN (SELECT event_id FROM evidence)")).rowcount
    conn.execute(text(f"DROP TABLE {name}"))
    return kept


def droppable(conn: Connection, cutoff: datetime, up_to_id: int | None) -> list[tuple[date, str]]:
    """Day partitions wholly before `cutoff` whose events all have ids ≤ `up_to_id` (rolled up)."""
    out = []
    for day, name in sorted(day_partitions(conn).items()):
        if _start(day + timedelta(days=1)) > cutoff:
            break
        if up_to_id is not None:
            top = conn.execute(text(f"SELECT max(id) FROM {name}")).scalar()
            if top is not None and top > up_to_id:
                continue
        out.append((day, name))
    return out


# --- conversion of a plain table (migration 0017) -------------------------------------------

def convert_to_partitioned(conn: Connection, now: datetime) -> bool:
    """Turn a plain `events` table into the partitioned one in the caller's transaction: rename it,
    create the partitioned parent (same columns, defaults and sequence; keys with `ts`; the same
    secondary indexes), day partitions for the days its rows cover (the last `BACKFILL_DAYS`) and
    the next `AHEAD_DAYS`, copy the rows in id batches, drop it. False when there is nothing to do
    (SQLite, or already partitioned)."""
    if conn.dialect.name != "postgresql" or is_partitioned(conn):
        return False
    seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": TABLE}).scalar()
    index_defs = conn.execute(text(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = to_regclass(:t) AND NOT x.indisunique"), {"t": TABLE}).all()
    constraints = conn.execute(text(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:t) AND contype IN ('p', 'u')"),
        {"t": TABLE}).scalars().all()
    conn.execute(text(f"ALTER TABLE {TABLE} RENAME TO {OLD}"))
    for name in constraints:
        conn.execute(text(f'ALTER TABLE {OLD} RENAME CONSTRAINT "{name}" TO "{name}_old"'))
    for name, _ in index_defs:
        conn.execute(text(f'ALTER INDEX "{name}" RENAME TO "{name}_old"'))
    conn.execute(text(
        f"CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE "
        f"INCLUDING COMMENTS, CONSTRAINT events_pkey PRIMARY KEY (id, ts), "
        f"CONSTRAINT uq_events_event_id_ts UNIQUE (event_id, ts)) PARTITION BY RANGE (ts)"))
    for _name, ddl in index_defs:  # their text names `events`, the new parent now
        conn.execute(text(ddl))
    conn.execute(text(f"CREATE TABLE {DEFAULT} PARTITION OF {TABLE} DEFAULT"))
    first = now.astimezone(timezone.utc).date() - timedelta(days=BACKFILL_DAYS)
    ensure_partitions(conn, [d for d in _days_with_rows(conn, OLD) if d >= first] + days_ahead(now))
    _copy_rows(conn)
    if seq:
        conn.execute(text(f"ALTER SEQUENCE {seq} OWNED BY {TABLE}.id"))
    conn.execute(text(f"DROP TABLE {OLD}"))
    return True


def _days_with_rows(conn: Connection, table: str) -> list[date]:
    """The UTC days that hold rows, one index probe per day (a loose scan of the `ts` index)."""
    return list(conn.execute(text(
        f"WITH RECURSIVE d(day) AS ("
        f"  SELECT date_trunc('day', min(ts) AT TIME ZONE 'UTC') FROM {table} "
        f"  UNION ALL SELECT (SELECT date_trunc('day', min(ts) AT TIME ZONE 'UTC') FROM {table} "
        f"    WHERE ts >= ((d.day + interval '1 day') AT TIME ZONE 'UTC')) FROM d WHERE d.day IS NOT NULL"
        f") SELECT day::date FROM d WHERE day IS NOT NULL")).scalars())


def _copy_rows(conn: Connection) -> None:
    low = conn.execute(text(f"SELECT min(id), max(id) FROM {OLD}")).one()
    if low[0] is None:
        return
    for start in range(low[0], low[1] + 1, COPY_BATCH):
        conn.execute(text(f"INSERT INTO {TABLE} SELECT * FROM {OLD} WHERE id >= :a AND id < :b"),
                     {"a": start, "b": start + COPY_BATCH})


def ingest_fits_partitions(conn: Connection) -> bool:
    """Whether ingest's insert works on a partitioned table: its `ON CONFLICT` must not name
    `event_id` alone (no unique index can be on `event_id` alone once `ts` partitions it)."""
    from llm_incident.events.ingest import _insert_plan  # the statement ingest really sends

    return "ON CONFLICT (event_id)" not in _insert_plan(conn.dialect).sql
