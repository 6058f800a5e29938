"""Two requests touching one incident at once (PostgreSQL, where writers run concurrently) both
count: the version is bumped by the database, so neither bump is lost (a lost one once left the
card's outbox row waiting for a version the incident never reached, updating it in a loop)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from llm_incident.incidents import service as incidents

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def test_concurrent_touches_are_both_counted(db):
    if db.is_sqlite:
        pytest.skip("SQLite runs one writer at a time: no concurrent touch to lose")
    with db.write() as session:
        incident, _ = incidents.start_incident(
            session, incidents.StartRequest(commander="U1", routes=("r",)), now=NOW)
        start = incident.version
    both_read = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def touch_after_both_read() -> None:
        try:
            with db.write() as session:
                found = incidents.get_incident(session, 1)
                assert found.version == start
                both_read.wait()
                incidents.touch(session, found, NOW)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=touch_after_both_read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    with db.read() as session:
        assert incidents.get_incident(session, 1).version == start + 2
