"""Retention on both backends: old raw events go in bounded batches, evidence stays."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from llm_incident.events.ingest import ingest_events
from llm_incident.events.models import Event
from llm_incident.events.retention import purge_events
from llm_incident.evidence.service import attach, list_evidence
from llm_incident.incidents.service import StartRequest, start_incident
from llm_incident.scheduler.context import JobContext
from llm_incident.scheduler.leader import Leadership
from llm_incident.scheduler.retention import RetentionPolicy
from llm_incident.scheduler.runner import Scheduler

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)


def _seed(db, route: str, start: datetime, count: int, prefix: str) -> None:
    events = [{"event_id": f"{prefix}-{i}", "route": route,
               "ts": (start + timedelta(minutes=i)).isoformat(), "duration_ms": 100 + i}
              for i in range(count)]
    with db.write() as session:
        assert ingest_events(session, events, now=NOW).accepted == count


def _ids(db) -> set[str]:
    with db.read() as session:
        return set(session.execute(select(Event.event_id)).scalars())


def test_old_events_go_in_batches_and_evidence_stays(db):
    _seed(db, "support.reply", NOW - timedelta(days=40), 25, "old")
    _seed(db, "support.reply", NOW - timedelta(days=1), 5, "new")
    with db.write() as session:
        incident, _ = start_incident(session, StartRequest(commander="U1",
                                                           routes=("support.reply",)), now=NOW)
        attach(session, incident, ["old-3", "old-20"], label="bad", actor="U1", now=NOW)

    result = purge_events(db, NOW - timedelta(days=30), batch=4, max_batches=3, pause=0)
    assert (result.deleted, result.batches, result.done) == (12, 3, False)
    result = purge_events(db, NOW - timedelta(days=30), batch=4, pause=0)
    assert result.done and result.deleted == 23 - 12

    assert _ids(db) == {"old-3", "old-20"} | {f"new-{i}" for i in range(5)}
    with db.read() as session:
        items = list_evidence(session, incident)
    assert {i.event_id for i in items} == {"old-3", "old-20"}
    assert all(i.event is not None for i in items)  # the postmortem still has its examples


def test_on_sqlite_the_purge_yields_the_write_lock_three_times_as_long_as_it_held_it(
        db, monkeypatch):
    # a fake clock: each batch "takes" 0.1 s; the pause after it is recorded, not slept
    from llm_incident.events import retention

    class Clock:
        now, pauses = 0.0, []

        def monotonic(self):
            self.now += 0.1  # read twice per batch: before and after it
            return self.now

        def sleep(self, seconds):
            self.pauses.append(round(seconds, 6))

    clock = Clock()
    monkeypatch.setattr(retention, "time", clock)
    _seed(db, "support.reply", NOW - timedelta(days=40), 12, "old")
    result = purge_events(db, NOW - timedelta(days=30), batch=4, pause=0.05)
    assert (result.deleted, result.batches) == (12, 3)
    # SQLite has one writer: 3 × 0.1 s; PostgreSQL (MVCC, ingest never waits): the fixed pause
    expected = 0.3 if db.is_sqlite else 0.05
    assert clock.pauses == [expected] * 3  # after each full batch; the 4th finds none
    assert purge_events(db, NOW - timedelta(days=30), batch=4, pause=0).deleted == 0


def test_the_scheduler_job_purges_past_the_configured_retention(db):
    _seed(db, "search.answer", NOW - timedelta(days=8), 3, "week")
    _seed(db, "search.answer", NOW - timedelta(days=2), 3, "recent")
    jc = JobContext(db=db)
    jc.retention = RetentionPolicy(events=timedelta(days=7), rollups=timedelta(days=400))
    scheduler = Scheduler(jc, leadership=Leadership(db), alerts_on=False,
                          clock=lambda: NOW + timedelta(minutes=1))
    assert scheduler.run_job("storage") is True
    assert scheduler.status()["last_runs"]["storage"]["error"] is None
    assert _ids(db) == {f"recent-{i}" for i in range(3)}
    with db.read() as session:
        assert session.execute(select(func.count()).select_from(Event)).scalar() == 3


def test_the_retention_comes_from_the_settings_and_old_instances_are_forgotten(db):
    from llm_incident.controls.instances import ClientInstance
    from llm_incident.scheduler.retention import run_storage
    from llm_incident.scheduler.setup import job_context
    from tests.support import settings_for

    _seed(db, "search.answer", NOW - timedelta(days=4), 3, "old")
    _seed(db, "search.answer", NOW - timedelta(days=1), 3, "new")
    with db.write() as session:
        for name, seen in (("gone", NOW - timedelta(days=8)), ("here", NOW - timedelta(hours=1))):
            session.add(ClientInstance(id=name, name=name, host="h", version="0.1.0", first_seen=seen,
                                       last_seen=seen))
    jc = job_context(settings_for(db, event_retention="3d"), db)
    assert jc.event_retention == timedelta(days=3)
    run_storage(jc, NOW + timedelta(minutes=1))  # events are rolled up 30 s after they arrive
    assert _ids(db) == {f"new-{i}" for i in range(3)}
    with db.read() as session:
        assert [i.id for i in session.exec(select(ClientInstance)).scalars()] == ["here"]
