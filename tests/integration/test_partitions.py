"""PostgreSQL day partitions of `events`: created ahead, any timestamp lands, old days dropped with
their evidence kept, the conversion of a populated plain table; no-ops on SQLite."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text

from llm_incident.events.ingest import existing_ids, ingest_events
from llm_incident.events.models import Event
from llm_incident.events.partitions import (DEFAULT, convert_to_partitioned, day_partitions,
                                            ingest_fits_partitions, is_partitioned, partition_name)
from llm_incident.evidence.service import attach, list_evidence
from llm_incident.incidents.service import StartRequest, start_incident
from llm_incident.migrate import upgrade
from llm_incident.scheduler.context import JobContext
from llm_incident.scheduler.partitions import keep_partitions
from llm_incident.scheduler.retention import RetentionPolicy, run_storage
from tests.support import database_for

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
TODAY = NOW.date()


def _event(event_id: str, ts: datetime, route: str = "support.reply") -> Event:
    return Event(event_id=event_id, ts=ts, received_at=ts, route=route, duration_ms=120.0,
                 tokens_out=40, meta={"k": event_id})


def _add(db, *events: Event) -> None:
    with db.write() as session:
        session.add_all(events)


def _where(db) -> dict[str, str]:
    """event_id → the partition holding it."""
    with db.read() as session:
        rows = session.execute(text("SELECT event_id, tableoid::regclass::text FROM events")).all()
    return dict(rows)


@pytest.fixture
def pg(tmp_path):
    """A migrated PostgreSQL database whose `events` table is partitioned."""
    with database_for("postgres", tmp_path, migrate=False) as db:
        upgrade(db, "0016")
        with db.write() as session:  # what 0017 does, on the test's day
            assert convert_to_partitioned(session.connection(), NOW)
        upgrade(db)
        yield db


@pytest.mark.postgres
def test_partitions_are_created_ahead_and_the_job_is_idempotent(pg):
    later = NOW + timedelta(days=5)
    first = keep_partitions(pg, later, later - timedelta(days=30), 0)
    assert first.created == tuple(TODAY + timedelta(days=d) for d in range(5, 9))
    again = keep_partitions(pg, later, later - timedelta(days=30), 0)
    assert (again.created, again.dropped) == ((), ())
    with pg.read() as session:
        days = day_partitions(session.connection())
    assert set(days) == {TODAY + timedelta(days=d) for d in (0, 1, 2, 3, 5, 6, 7, 8)}
    assert days[TODAY] == partition_name(TODAY) == f"events_p{TODAY:%Y%m%d}"


@pytest.mark.postgres
def test_an_event_at_any_time_is_stored(pg):
    _add(pg, _event("today", NOW), _event("tomorrow", NOW + timedelta(days=1)),
         _event("past", datetime(1990, 1, 1, tzinfo=timezone.utc)),
         _event("future", datetime(2100, 6, 1, tzinfo=timezone.utc)))
    assert _where(pg) == {"today": partition_name(TODAY),
                          "tomorrow": partition_name(TODAY + timedelta(days=1)),
                          "past": DEFAULT, "future": DEFAULT}


@pytest.mark.postgres
def test_ingest_stores_and_deduplicates_on_the_partitioned_table(pg):
    with pg.read() as session:
        assert ingest_fits_partitions(session.connection())  # no ON CONFLICT (event_id) alone
    items = [{"event_id": name, "route": "support.reply", "ts": ts.isoformat()} for name, ts in (
        ("a", NOW), ("b", NOW + timedelta(days=1)), ("c", datetime(1999, 1, 1, tzinfo=timezone.utc)))]
    with pg.write() as session:
        assert ingest_events(session, items, now=NOW).accepted == 3
    with pg.write() as session:
        again = ingest_events(session, items, now=NOW)
    assert (again.accepted, again.duplicates) == (0, 3)
    assert set(_where(pg)) == {"a", "b", "c"}


@pytest.mark.postgres
def test_the_duplicate_lookup_probes_the_index_of_a_partition_not_analyzed_yet(pg):
    """The first minutes of a day's partition (or a fresh install): 30,000 rows, no statistics
    yet, and the lookup of a batch's ids under a generic plan — what psycopg runs once it has
    prepared the statement. An `IN` list of 500 parameters was a sequential scan comparing each
    row with each id (400 ms a batch here); the array parameter probes the index."""
    day = partition_name(TODAY)
    with pg.write() as session:
        session.execute(text(
            "INSERT INTO events (event_id, ts, received_at, route, env, status, contains_banned,"
            " priced, attempt, metadata) SELECT 'e-' || g, :ts, :ts, 'support.reply', 'prod',"
            " 'ok', false, false, 1, '{}' FROM generate_series(1, 30000) g"), {"ts": NOW})
    with pg.read() as session:
        assert session.execute(text("SELECT last_analyze, last_autoanalyze FROM "
                                    "pg_stat_user_tables WHERE relname = :t"), {"t": day}).one() == (None, None)
        plans: list[str] = []
        session.connection().connection.driver_connection.add_notice_handler(
            lambda notice: plans.append(notice.message_primary or ""))
        for setting in ("LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0",
                        "SET client_min_messages = log", "SET plan_cache_mode = force_generic_plan"):
            session.execute(text(setting))
        found = existing_ids(session, [f"e-{i}" for i in range(29_501, 30_501)])
        session.execute(text("SELECT 1"))  # the last plan's notice arrives with the next answer
    assert found == {f"e-{i}" for i in range(29_501, 30_001)}
    lookups = [p for p in plans if "event_id" in p and "Query Text: SELECT events.event_id" in p]
    assert len(lookups) == 2  # two chunks of 500
    for plan in lookups:
        scans = [line.strip() for line in plan.splitlines() if f"on {day} " in line]
        assert scans and not any("Seq Scan" in line for line in scans), plan


@pytest.mark.postgres
def test_a_day_created_later_takes_its_rows_from_the_default_partition(pg):
    ahead = NOW + timedelta(days=10)
    _add(pg, _event("early", ahead))
    assert _where(pg) == {"early": DEFAULT}
    keep_partitions(pg, NOW + timedelta(days=8), NOW - timedelta(days=30), 0)
    assert _where(pg) == {"early": partition_name(ahead.date())}


@pytest.mark.postgres
def test_old_days_are_dropped_whole_and_the_postmortem_keeps_its_examples(pg):
    old = NOW - timedelta(days=40)
    with pg.write() as session:
        ensure = [old.date() + timedelta(days=d) for d in range(3)]
        from llm_incident.events.partitions import ensure_partitions
        ensure_partitions(session.connection(), ensure)
    _add(pg, *(_event(f"old-{d}-{i}", old + timedelta(days=d, minutes=i)) for d in range(3) for i in range(4)))
    _add(pg, *(_event(f"new-{i}", NOW - timedelta(hours=i)) for i in range(3)))
    with pg.write() as session:
        incident, _ = start_incident(session, StartRequest(commander="U1", routes=("support.reply",)), now=NOW)
        attach(session, incident, ["old-1-2"], label="bad", actor="U1", now=NOW)
    jc = JobContext(db=pg)
    jc.retention = RetentionPolicy(events=timedelta(days=30), rollups=timedelta(days=400))
    run = run_storage(jc, NOW + timedelta(minutes=1))
    assert run.partitions.dropped == tuple(ensure) and run.partitions.kept == 1
    assert run.events.deleted == 0  # whole days went; nothing was left to delete row by row
    assert _where(pg) == {"old-1-2": DEFAULT, **{f"new-{i}": partition_name(TODAY) for i in range(3)}}
    with pg.read() as session:
        items = list_evidence(session, incident)
        assert not set(ensure) & set(day_partitions(session.connection()))
    assert [(i.event.ts, i.event.tokens_out) for i in items] == [(old + timedelta(days=1, minutes=2), 40)]
    with pg.read() as session:  # the whole row, metadata included
        assert session.execute(select(Event.meta).where(Event.event_id == "old-1-2")).scalar() == {"k": "old-1-2"}
    second = run_storage(jc, NOW + timedelta(minutes=2))
    assert (second.partitions.dropped, second.partitions.kept, second.events.deleted) == ((), 0, 0)


@pytest.mark.postgres
def test_a_day_partly_past_retention_waits_whole_while_the_default_partition_is_purged(pg):
    cutoff_day = (NOW - timedelta(days=30)).date()
    with pg.write() as session:
        from llm_incident.events.partitions import ensure_partitions
        ensure_partitions(session.connection(), [cutoff_day])
    _add(pg, _event("edge", NOW - timedelta(days=30, hours=1)),  # its day ends after the cutoff
         _event("stray", datetime(2001, 1, 1, tzinfo=timezone.utc)))  # default partition
    jc = JobContext(db=pg)
    jc.retention = RetentionPolicy(events=timedelta(days=30), rollups=timedelta(days=400))
    run = run_storage(jc, NOW + timedelta(minutes=1))
    assert (run.partitions.dropped, run.events.deleted) == ((), 1)
    assert _where(pg) == {"edge": partition_name(cutoff_day)}
    later = run_storage(jc, NOW + timedelta(days=1))
    assert later.partitions.dropped == (cutoff_day,) and _where(pg) == {}


@pytest.mark.postgres
def test_a_day_not_rolled_up_yet_is_not_dropped(pg):
    old = NOW - timedelta(days=40)
    with pg.write() as session:
        from llm_incident.events.partitions import ensure_partitions
        ensure_partitions(session.connection(), [old.date()])
    _add(pg, _event("late", old))
    run = keep_partitions(pg, NOW, NOW - timedelta(days=30), 0)  # the rollup job has read nothing
    assert run.dropped == () and _where(pg) == {"late": partition_name(old.date())}


def _index_names(db) -> set[str]:
    with db.read() as session:
        return set(session.execute(text(
            "SELECT indexrelname FROM pg_stat_user_indexes WHERE relname = 'events' UNION "
            "SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid "
            "WHERE x.indrelid = 'events'::regclass")).scalars())


@pytest.mark.postgres
def test_the_conversion_keeps_rows_ids_indexes_and_the_sequence(tmp_path):
    with database_for("postgres", tmp_path, migrate=False) as db:
        upgrade(db, "0016")
        times = [NOW - timedelta(days=d, hours=h) for d in (0, 1, 3, 500) for h in range(3)]
        _add(db, *(_event(f"e{i}", ts, route=f"r{i % 2}") for i, ts in enumerate(times)))
        with db.write() as session:  # a gap in the ids, as deleted rows leave
            session.execute(text("DELETE FROM events WHERE event_id = 'e4'"))
        before_rows = _rows(db)
        before_indexes = _index_names(db) - {"events_pkey", "events_event_id_key"}
        with db.write() as session:
            assert convert_to_partitioned(session.connection(), NOW) is True
            assert convert_to_partitioned(session.connection(), NOW) is False  # already done
        assert _rows(db) == before_rows
        assert before_indexes <= _index_names(db)
        with db.read() as session:
            assert is_partitioned(session.connection())
            days = set(day_partitions(session.connection()))
            tables = set(session.execute(text("SELECT tablename FROM pg_tables")).scalars())
        assert {TODAY - timedelta(days=d) for d in (0, 1, 3)} | {TODAY + timedelta(days=3)} <= days
        assert "events_unpartitioned" not in tables
        assert _where(db)["e9"] == DEFAULT  # 500 days back: older than the days it creates
        _add(db, _event("after", NOW))
        with db.read() as session:
            new_id = session.execute(select(Event.id).where(Event.event_id == "after")).scalar()
        assert new_id == max(r[0] for r in before_rows) + 1
        upgrade(db)  # 0017 on an already partitioned table changes nothing
        assert len(_rows(db)) == len(before_rows) + 1


def _rows(db) -> list[tuple]:
    with db.read() as session:
        return [tuple(r) for r in session.execute(select(
            Event.id, Event.event_id, Event.ts, Event.route, Event.meta, Event.duration_ms).order_by(Event.id))]


@pytest.mark.postgres
def test_a_fresh_postgres_database_is_partitioned_by_its_migrations(tmp_path):
    with database_for("postgres", tmp_path) as db:
        with db.read() as session:
            conn = session.connection()
            assert ingest_fits_partitions(conn)
            assert is_partitioned(conn)
            assert {DEFAULT} | {partition_name(datetime.now(timezone.utc).date())} <= set(
                session.execute(text("SELECT tablename FROM pg_tables")).scalars())


def test_sqlite_keeps_one_table(sqlite_db):
    _add(sqlite_db, _event("x", NOW))
    with sqlite_db.write() as session:
        assert convert_to_partitioned(session.connection(), NOW) is False
        assert not is_partitioned(session.connection())
    run = keep_partitions(sqlite_db, NOW, NOW - timedelta(days=30), 10)
    assert (run.created, run.dropped, run.kept) == ((), (), 0)
    with sqlite_db.read() as session:
        names = set(session.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'")).scalars())
        assert session.execute(select(func.count()).select_from(Event)).scalar() == 1
    assert "events" in names and not any(n.startswith("events_") for n in names)


