"""`llm-incident db stats` as an operator runs it: rows, size and the oldest row per table."""

from __future__ import annotations

import pytest

from llm_incident.db import Database
from llm_incident.events.ingest import ingest_events
from llm_incident.migrate import upgrade
from tests.e2e.test_cli import run
from tests.support import postgres_database
from datetime import datetime, timezone

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)


def _check(url: str, tmp_path) -> None:
    db = Database(url)
    upgrade(db)
    with db.write() as session:
        ingest_events(session, [{"event_id": f"e{i}", "route": "r", "ts": f"2026-11-2{i}T10:00:00Z"}
                                for i in range(1, 4)], now=NOW)
    db.dispose()
    result = run(["db", "stats"], {"LLM_INCIDENT_DATABASE_URL": url,
                                   "LLM_INCIDENT_EVENT_RETENTION": "14d"}, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "retention: events 2w" in result.stdout
    events = lines["events"].split()
    assert events[1] == "3" and events[-1] == "2026-11-21T10:00:00+00:00"
    assert events[2] not in ("-", "0")  # a size in bytes (PostgreSQL: its day partitions')
    assert lines["evidence"].split()[1] == "0"


def test_db_stats_on_sqlite(tmp_path):
    _check(f"sqlite:///{tmp_path / 'stats.db'}", tmp_path)


@pytest.mark.postgres
def test_db_stats_on_postgres(tmp_path):
    with postgres_database() as url:
        _check(url, tmp_path)
