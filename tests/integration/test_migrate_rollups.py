"""Migration 0013 on a populated database: the events stay, and the rollup job then rolls up
everything stored before the upgrade, old events included."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from llm_incident.events.ingest import ingest_events
from llm_incident.events.models import Event
from llm_incident.migrate import current_revision, head_revision, upgrade
from llm_incident.rollups.build import roll_up
from llm_incident.rollups.models import EventRollup
from tests.support import database_for

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_upgrade_keeps_events_and_the_job_rolls_them_up(backend, tmp_path):
    with database_for(backend, tmp_path, migrate=False) as db:
        upgrade(db, "0011")
        events = [{"event_id": f"m{i}", "route": f"route-{i % 3}", "duration_ms": 10.0 + i,
                   "ts": (NOW - timedelta(days=45) + timedelta(minutes=i * 30)).isoformat()}
                  for i in range(3000)]  # 62 days: some older than the raw retention
        with db.write() as session:
            assert ingest_events(session, events, now=NOW).accepted == 3000
        upgrade(db)
        assert current_revision(db) == head_revision(db)
        run = roll_up(db, NOW + timedelta(minutes=5), frozen_before=NOW - timedelta(days=30),
                      batch=1000)
        assert run.caught_up and run.events == 3000
        with db.read() as session:
            assert session.execute(select(func.count()).select_from(Event)).scalar() == 3000
            assert session.execute(select(func.sum(EventRollup.calls))).scalar() == 3000
            assert session.execute(select(func.count()).select_from(EventRollup)).scalar() == 3000
