"""The scheduler in the running server (APScheduler 3.x), its leader election on PostgreSQL, and
restarts: state lives in the store, so a restarted server neither loses nor repeats a send."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import select

from llm_incident.alerts.models import AlertNotification
from llm_incident.app import create_app
from llm_incident.commands.core import CommandCore
from llm_incident.commands.context import Context
from llm_incident.events.ingest import ingest_events
from llm_incident.scheduler.context import JobContext
from llm_incident.scheduler.leader import Leadership
from llm_incident.scheduler.models import JobSlot
from llm_incident.scheduler.runner import Scheduler
from llm_incident.slack.outbox import SlackDelivery
from tests.support import database_for, live_server, settings_for

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


def wait_for(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def slots(db, job: str) -> list[JobSlot]:
    with db.read() as session:
        return list(session.exec(select(JobSlot).where(JobSlot.job == job)))


def notifications(db) -> list[AlertNotification]:
    with db.read() as session:
        return list(session.exec(select(AlertNotification)))


def test_sqlite_process_always_leads(sqlite_db):
    assert Leadership(sqlite_db).is_leader()


@pytest.mark.postgres
def test_postgres_advisory_lock_elects_one_leader_and_fails_over(tmp_path):
    with database_for("postgres", tmp_path) as db:
        first, second = Leadership(db, lock_key=4242), Leadership(db, lock_key=4242)
        try:
            assert first.is_leader() and first.is_leader()   # keeps it
            assert not second.is_leader()
            # a vanished leader loses its session in seconds, not after the OS keepalive default
            settings = first._conn.execute(text(
                "SELECT current_setting('tcp_keepalives_idle'), "
                "current_setting('tcp_user_timeout'), current_setting('statement_timeout')")).one()
            assert tuple(settings) == ("10", "25000", "10s")
            first.release()
            assert second.is_leader() and not first.is_leader()
            # the leader's connection dies (as when its process is killed): the lock goes with it
            with db.engine.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_locks "
                                  "WHERE locktype = 'advisory' AND objid = 4242"))
                conn.commit()
            assert wait_for(first.is_leader, timeout=10)  # the lock was freed: taken over
            assert not second.is_leader()                  # its connection is gone, and the lock
        finally:
            first.release()
            second.release()


def test_a_job_runs_only_where_this_process_leads(sqlite_db):
    class Follower:
        def is_leader(self):
            return False

        def release(self):
            pass

    calls = []
    scheduler = Scheduler(JobContext(db=sqlite_db), leadership=Follower(), alerts_on=False,
                          clock=lambda: NOW)
    scheduler.jobs["probe"] = (lambda jc, now: calls.append(now), 1)
    assert scheduler.run_job("probe") is False and calls == []
    scheduler.leadership = Leadership(sqlite_db)
    assert scheduler.run_job("probe") is True and calls == [NOW]
    assert scheduler.status()["leader"] is True


def test_a_failing_job_is_logged_and_the_next_still_runs(sqlite_db, caplog):
    scheduler = Scheduler(JobContext(db=sqlite_db), leadership=Leadership(sqlite_db),
                          alerts_on=False, clock=lambda: NOW)
    scheduler.jobs["broken"] = (lambda jc, now: 1 / 0, 1)
    assert scheduler.run_job("broken") is True
    assert "division by zero" in scheduler.status()["last_runs"]["broken"]["error"]
    assert "scheduler job broken failed" in caplog.text
    assert scheduler.run_job("expiry") is True


def test_served_scheduler_alerts_and_a_restart_neither_loses_nor_doubles(db, tmp_path):
    """The real server runs the jobs in the background; it stops; meanwhile a reminder comes
    due; the restarted server sends it once, and a second restart sends nothing again."""
    events = [{"event_id": f"e{i}", "route": "svc.route", "status": "error" if i % 2 else "ok",
               "error_code": "503" if i % 2 else None,
               "ts": (NOW - timedelta(seconds=10 * (i + 1))).isoformat()} for i in range(60)]
    with db.write() as session:
        ingest_events(session, events, now=NOW)
    CommandCore(db, SlackDelivery()).run("start other.route latency slow",
                                         Context(user="U1", channel="C1", now=NOW))
    settings = settings_for(db, scheduler=True, alert_channel="C_ALERTS",
                            alert_interval_seconds=1)

    def serve_once(at: datetime) -> dict:
        app = create_app(settings, database=db, clock=lambda: at)
        with live_server(app) as url:
            wait_for(lambda: app.state.scheduler.status()["last_runs"].keys()
                     >= {"alerts", "status-nudges", "expiry", "mitigation-checks"})
            metrics = httpx.get(f"{url}/metrics").text
            assert "llm_incident_scheduler_leader 1.0" in metrics
            assert 'llm_incident_scheduler_job_runs_total{job="alerts",outcome="ok"}' in metrics
            return httpx.get(f"{url}/healthz").json()

    health = serve_once(NOW)
    assert health["scheduler"]["leader"] is True and health["scheduler"]["jobs"]["alerts"] == 1
    assert [(n.route, n.level) for n in notifications(db)] == [("svc.route", "critical")]
    assert slots(db, "status-nudge") == []                     # not due at start
    serve_once(NOW + 31 * MIN)                                 # down while it came due
    assert len(slots(db, "status-nudge")) == 1
    resolved = [(n.level, n.reason) for n in notifications(db)]  # the route went quiet
    assert resolved == [("critical", "no onset in the last 2 h"),
                        ("ok", "not judged: no traffic since 13:59")]
    serve_once(NOW + 32 * MIN)                                 # restarted again: nothing doubled
    assert len(slots(db, "status-nudge")) == 1
    assert len(notifications(db)) == 2


def test_scheduler_off_in_settings(db):
    app = create_app(settings_for(db, scheduler=False), database=db)
    assert app.state.scheduler is None
    with live_server(app) as url:
        assert httpx.get(f"{url}/healthz").json()["scheduler"] == "off"


def test_a_faster_clock_divides_the_intervals_on_the_wall_clock(sqlite_db):
    """The demo's `--speed 60`: every job keeps its length in the demo's time."""
    normal = Scheduler(JobContext(db=sqlite_db), leadership=Leadership(sqlite_db), alerts_on=True,
                       alert_interval_seconds=60)
    fast = Scheduler(JobContext(db=sqlite_db), leadership=Leadership(sqlite_db), alerts_on=True,
                     alert_interval_seconds=60, time_scale=60)
    intervals = {}
    for name, scheduler in (("normal", normal), ("fast", fast)):
        scheduler.start()
        try:
            intervals[name] = {job.id: job.trigger.interval.total_seconds()
                               for job in scheduler._aps.get_jobs()}
        finally:
            scheduler.stop()
    assert intervals["normal"]["alerts"] == 60 and intervals["fast"]["alerts"] == 1
    assert intervals["fast"]["follow-ups"] == intervals["normal"]["follow-ups"] / 60
    assert intervals["fast"]["expiry"] == 0.5  # 15 s / 60, but never more often than 0.5 s
    assert fast.status()["jobs"] == normal.status()["jobs"]  # reported in the clock's seconds
