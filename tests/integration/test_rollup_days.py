"""Day rollups on both backends: each day row is the sum of its hour rows (sketches merged bucket by
bucket), a late event re-rolls its day, retention removes old days, the query path reads whole UTC
days from day rows, and migration 0018 builds the days of hours stored before it (and goes back)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from llm_incident.metrics.rollup_stats import plan, route_counts
from llm_incident.metrics.stats import stats_for
from llm_incident.migrate import current_revision, head_revision, upgrade
from llm_incident.rollups.build import purge_rollups, roll_up
from llm_incident.rollups.hours import floor_day
from llm_incident.rollups.models import EventRollupDay, EventRollupHour
from llm_incident.rollups.sketch import Merged
from tests.integration.test_metrics_stats import _random_events
from tests.integration.test_metrics_two_paths import _assert_agree
from tests.integration.test_rollup_hours import (LATER, NOW, _downgrade, _rows,
                                                 _assert_hours_match_minutes, assert_rows_add_up)
from tests.integration.test_rollups import _store
from tests.support import database_for

MIDNIGHT = floor_day(NOW)  # NOW is 14:00


def _seed(db, seed: int, hours: int = 62) -> None:
    """Two routes' events over the `hours` before NOW: 62 h covers one whole UTC day and parts of two."""
    rnd = random.Random(seed)
    events = []
    for route in ("support.reply", "search.answer"):
        events += _random_events(rnd, route, 900, NOW - timedelta(hours=hours), timedelta(hours=hours))
    _store(db, [e for e in events if e["ts"] < NOW])


def _assert_days_match_hours(db) -> int:
    return assert_rows_add_up(db, EventRollupHour, EventRollupDay, floor_day)


@pytest.mark.parametrize("seed", [1, 2])
def test_day_rows_are_the_sum_of_their_hour_rows(db, seed):
    _seed(db, seed)
    run = roll_up(db, LATER, batch=211)  # many batches: a day is rewritten many times
    assert run.caught_up
    _assert_hours_match_minutes(db)
    assert _assert_days_match_hours(db) >= 2 * 3
    assert {d.minute for d in _rows(db, EventRollupDay)} >= {MIDNIGHT - timedelta(days=k) for k in range(3)}


def test_a_late_event_rerolls_its_day(db):
    day = MIDNIGHT - timedelta(days=2)
    _store(db, [{"route": "r", "ts": day + timedelta(hours=h, minutes=7), "duration_ms": 10.0}
                for h in (1, 5, 9)])
    roll_up(db, LATER)
    _store(db, [{"route": "r", "ts": day + timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999),
                 "duration_ms": 9000.0}], now=NOW + timedelta(minutes=1))  # the day's last instant
    roll_up(db, LATER + timedelta(minutes=1))
    (row,) = _rows(db, EventRollupDay)
    assert (row.minute, row.calls) == (day, 4)
    merged = Merged()
    merged.add(row.duration_sketch)
    assert merged.values_at_ranks([4]) == [pytest.approx(9000.0, rel=0.01)]
    _assert_days_match_hours(db)


def test_purging_rollups_removes_the_days_that_end_by_the_cutoff(db):
    _store(db, [{"route": "r", "ts": MIDNIGHT - timedelta(days=d, hours=-3)} for d in range(4)])
    roll_up(db, LATER)
    cutoff = MIDNIGHT - timedelta(days=1, hours=-12)  # noon of yesterday
    purge_rollups(db, cutoff, batch=1)  # one row per transaction: minutes, then hours, then days
    days = sorted(d.minute for d in _rows(db, EventRollupDay))
    assert days == [MIDNIGHT - timedelta(days=1), MIDNIGHT]  # yesterday ends after the cutoff
    assert all(h.minute >= cutoff - timedelta(hours=1) for h in _rows(db, EventRollupHour))


def test_the_rollup_path_reads_whole_days_from_day_rows(db):
    _seed(db, 3)
    roll_up(db, LATER)
    start, end = NOW - timedelta(hours=62, minutes=20, seconds=5), NOW - timedelta(seconds=17)  # 23:39:55
    with db.read() as session:
        exact = stats_for(session, "support.reply", start, end, path="exact")
        _assert_agree(exact, stats_for(session, "support.reply", start, end, path="rollups"))
        counts = route_counts(session, [start, end])
    assert counts is not None and counts["support.reply"][0][0] == exact.calls
    split = plan([start, end], NOW)
    assert [(a, b) for _i, a, b in split.days] == [(MIDNIGHT - timedelta(days=2), MIDNIGHT)]
    assert [(a, b) for _i, a, b in split.hours] == [(MIDNIGHT, NOW - timedelta(hours=1))]  # none before
    assert [(a, b) for _i, a, b in split.minutes] == [(start + timedelta(seconds=5), split.days[0][1]),
                                                      (NOW - timedelta(hours=1), NOW - timedelta(minutes=1))]
    with db.write() as session:  # the hours of the whole days go: the answer must not change
        session.execute(delete(EventRollupHour).where(EventRollupHour.minute >= split.days[0][1],
                                                      EventRollupHour.minute < split.days[0][2]))
    with db.read() as session:
        _assert_agree(exact, stats_for(session, "support.reply", start, end, path="rollups"))
    with db.write() as session:  # and without the day rows the calls are missing
        session.execute(delete(EventRollupDay))
    with db.read() as session:
        assert stats_for(session, "support.reply", start, end, path="rollups").calls < exact.calls


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_migration_0018_builds_the_days_of_stored_hours_and_goes_back(backend, tmp_path):
    with database_for(backend, tmp_path) as db:
        _seed(db, 4)
        roll_up(db, LATER)
        before = sorted((d.route, d.minute, d.env, d.model or "", d.calls, d.duration_sketch or b"")
                        for d in _rows(db, EventRollupDay))
        _downgrade(db, "0017")  # the day table goes, the hours stay
        with db.read() as session:
            assert session.execute(select(func.count()).select_from(EventRollupHour)).scalar() > 0
            tables = session.get_bind().dialect.get_table_names(session.connection())
        assert "event_rollups_daily" not in tables
        upgrade(db)
        assert current_revision(db) == head_revision(db)
        after = sorted((d.route, d.minute, d.env, d.model or "", d.calls, d.duration_sketch or b"")
                       for d in _rows(db, EventRollupDay))
        assert after == before and len(after) >= 6
        _assert_days_match_hours(db)
