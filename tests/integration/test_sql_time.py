"""`metrics.sql_time` on both backends: epoch seconds of stored timestamps equal Python's, floored
to the second (a microsecond before a whole second too, before 1970, year 1 and 9999), and the
bucket index built on them."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest
from sqlalchemy import literal, select
from sqlmodel.sql.sqltypes import UTCDateTime

from llm_incident.metrics.sql_time import bucket_index, epoch_seconds

UTC = timezone.utc
MOMENTS = [datetime(2026, 11, 26, 14, 0, tzinfo=UTC),
           datetime(2026, 11, 26, 13, 59, 59, 999999, tzinfo=UTC),
           datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
           datetime(1, 1, 1, tzinfo=UTC),
           datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_epoch_seconds_floor_the_stored_timestamp(db, moment):
    stored = literal(moment, UTCDateTime())
    with db.read() as session:
        got = session.execute(select(epoch_seconds(stored))).scalar_one()
        index = session.execute(select(bucket_index(stored, 0, 3600))).scalar_one()
    want = math.floor(moment.timestamp())
    assert got == want
    assert index == math.floor(want / 3600)
