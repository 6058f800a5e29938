"""The store: migrations from empty on both backends, tz-aware round trips, SQLite write locking."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from sqlalchemy import inspect, select, text

from llm_incident.changes import Change, ChangeIn, ChangeKind, recent_changes, record_change
from llm_incident.events.ingest import ingest_events
from llm_incident.events.models import Event
from llm_incident.migrate import current_revision, head_revision, upgrade
from llm_incident.tables import metadata
from tests.support import database_for

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)


def test_migrations_from_empty_create_every_table_and_index(db):
    assert current_revision(db) == head_revision(db)
    inspector = inspect(db.engine)
    assert set(metadata.tables) <= set(inspector.get_table_names())
    indexes = {ix["name"] for ix in inspector.get_indexes("events")}
    assert {"ix_events_route_ts_duration", "ix_events_ts"} <= indexes


def test_upgrade_twice_keeps_data(db):
    with db.write() as session:
        ingest_events(session, [{"event_id": "keep-me", "route": "r"}], now=NOW)
    upgrade(db)
    with db.read() as session:
        assert session.exec(select(Event.event_id)).all() == [("keep-me",)]


def test_timestamps_round_trip_as_aware_utc(db):
    local = datetime(2026, 11, 26, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-5)))
    with db.write() as session:
        ingest_events(session, [{"event_id": "a", "route": "r", "ts": local.isoformat()}], now=NOW)
        record_change(session, ChangeIn(route="r", kind=ChangeKind.prompt, description="v42",
                                        ts=local), now=NOW)
    with db.read() as session:
        event = session.exec(select(Event)).scalar_one()
        change = session.exec(select(Change)).scalar_one()
    for value in (event.ts, change.ts):
        assert value == local and value.utcoffset() == timedelta(0)
        assert value.isoformat() == "2026-11-26T14:30:15.123456+00:00"
    assert event.received_at == NOW


def test_time_window_queries_compare_instants_not_wall_clock(db):
    with db.write() as session:
        ingest_events(session, [
            {"event_id": "inside", "route": "r", "ts": "2026-11-26T15:59:00+02:00"},
            {"event_id": "outside", "route": "r", "ts": "2026-11-26T14:01:00+02:00"},
        ], now=NOW)
    start = datetime(2026, 11, 26, 13, 30, tzinfo=timezone.utc)
    with db.read() as session:
        rows = session.exec(select(Event.event_id).where(Event.ts >= start)).all()
    assert [r[0] for r in rows] == ["inside"]


def test_recent_changes_filters_route_and_window(db):
    with db.write() as session:
        for hours, route in [(1, "a"), (30, "a"), (2, "b")]:
            record_change(session, ChangeIn(route=route, kind=ChangeKind.deploy,
                                            description=f"{route}-{hours}h",
                                            ts=NOW - timedelta(hours=hours)), now=NOW)
    with db.read() as session:
        found = recent_changes(session, ["a"], until=NOW, lookback=timedelta(hours=24))
    assert [c.description for c in found] == ["a-1h"]


def test_sqlite_concurrent_read_then_write_transactions_never_lock(tmp_path):
    """Writers that read first would hit 'database is locked' with deferred BEGIN."""
    errors: list[BaseException] = []
    with database_for("sqlite", tmp_path) as db:

        def worker(n: int) -> None:
            try:
                for i in range(15):
                    with db.write() as session:
                        session.execute(text("SELECT count(*) FROM events")).scalar()
                        ingest_events(session, [{"event_id": f"{n}-{i}", "route": "r"}], now=NOW)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with db.read() as session:
            count = session.execute(text("SELECT count(*) FROM events")).scalar()
    assert errors == []
    assert count == 8 * 15


def test_sqlite_runs_in_wal_mode(sqlite_db):
    with sqlite_db.read() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_route_registry_follows_ingest(db):
    from llm_incident.events.routes import KnownRoute, known_routes

    with db.write() as session:
        ingest_events(session, [
            {"route": "b.route", "ts": "2026-11-26T10:00:00Z"},
            {"route": "a.route", "ts": "2026-11-26T11:00:00Z"},
        ], now=NOW)
    with db.write() as session:
        ingest_events(session, [
            {"route": "b.route", "ts": "2026-11-26T09:00:00Z"},
            {"route": "b.route", "ts": "2026-11-26T12:00:00Z"},
        ], now=NOW)
    with db.read() as session:
        assert known_routes(session) == ["a.route", "b.route"]
        b = session.get(KnownRoute, "b.route")
    assert (b.first_seen.hour, b.last_seen.hour) == (9, 12)


def test_upgrade_backfills_routes_from_existing_events(tmp_path):
    from llm_incident.events.routes import known_routes

    with database_for("sqlite", tmp_path, migrate=False) as db:
        upgrade(db, "0002")
        with db.write() as session:
            session.execute(text(
                "INSERT INTO events (event_id, ts, received_at, route, env, status, contains_banned,"
                " priced, attempt, metadata) VALUES ('old-1', '2026-11-20 10:00:00.000000',"
                " '2026-11-20 10:00:00.000000', 'legacy.route', 'prod', 'ok', 0, 0, 1, '{}')"))
        upgrade(db)
        with db.read() as session:
            assert known_routes(session) == ["legacy.route"]
            assert session.execute(text("SELECT count(*) FROM events")).scalar() == 1
