"""Replicas starting together on a fresh PostgreSQL database upgrade one after the other."""

from __future__ import annotations

import threading

import pytest

from llm_incident.db import Database
from llm_incident.migrate import current_revision, head_revision, upgrade
from tests.support import postgres_database


@pytest.mark.postgres
def test_concurrent_upgrades_of_a_fresh_database_all_succeed():
    with postgres_database() as url:
        databases = [Database(url) for _ in range(4)]
        errors: list[BaseException] = []
        start = threading.Barrier(len(databases))

        def run(db: Database) -> None:
            start.wait()
            try:
                upgrade(db)
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(db,)) for db in databases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        try:
            assert errors == []
            assert current_revision(databases[0]) == head_revision(databases[0])
        finally:
            for db in databases:
                db.dispose()
