"""Rows as the fast insert path writes them must equal what SQLAlchemy would write."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest


@pytest.mark.parametrize(
    "value",
    [datetime(2026, 11, 26, 14, 30, 15, 123456, tzinfo=timezone.utc),
     datetime(2026, 11, 26, 14, 30, 15, tzinfo=timezone.utc),
     datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=5, minutes=30))),
     None],
)
def test_fast_sqlite_datetime_matches_sqlalchemy(value):
    from sqlalchemy.dialects import sqlite
    from sqlmodel.sql.sqltypes import UTCDateTime

    from llm_incident.events.ingest import _sqlite_datetime

    dialect = sqlite.dialect()
    reference = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert _sqlite_datetime(value) == reference(value)


@pytest.mark.parametrize("value", [{}, {"a": 1, "nested": {"b": [1, 2.5, None, True]}},
                                   {"text": "ünïcode ✓ \"quoted\""}])
def test_fast_sqlite_json_reads_back_identically(value):
    import json

    from llm_incident.events.ingest import _sqlite_json

    assert json.loads(_sqlite_json(value)) == value
