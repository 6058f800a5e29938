"""Hour rollups on both backends: each hour row is the sum of its minute rows (sketches merged
bucket by bucket), late events re-roll their hour, retention removes old hours, the query path
reads whole hours, and migration 0016 builds the hours of minutes stored before it (and goes back)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, func, select

from llm_incident.metrics.rollup_stats import plan
from llm_incident.metrics.stats import stats_for
from alembic import command

from llm_incident.migrate import alembic_config, current_revision, head_revision, upgrade
from llm_incident.rollups.build import purge_rollups, roll_up
from llm_incident.rollups.models import EventRollup, EventRollupHour
from llm_incident.rollups.sketch import Merged
from tests.integration.test_metrics_stats import _random_events
from tests.integration.test_metrics_two_paths import _assert_agree
from tests.integration.test_rollups import _store
from tests.support import database_for

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(minutes=5)
SUMMED = ("calls", "flagged", "errors", "retries", "priced", "n_tokens_in", "sum_tokens_in",
          "n_tokens_out", "sum_tokens_out")
SKETCHES = ("duration_sketch", "tokens_in_sketch", "tokens_out_sketch")


def _downgrade(db, revision: str) -> None:
    cfg = alembic_config(db)
    with db.write_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _rows(db, model) -> list:
    with db.read() as session:
        return list(session.execute(select(model)).scalars())


def _seed(db, seed: int, hours: int = 5) -> None:
    rnd = random.Random(seed)
    events = []
    for route in ("support.reply", "search.answer"):
        events += _random_events(rnd, route, 600, NOW - timedelta(hours=hours),
                                 timedelta(hours=hours))
    _store(db, [e for e in events if e["ts"] < NOW])


def _sums_of(db, source, period_of) -> dict:
    """(route, period, env, model) → (sums, codes, merged sketches) from the `source` rows."""
    out: dict = defaultdict(lambda: [defaultdict(float), defaultdict(int),
                                     [Merged() for _ in SKETCHES]])
    for r in _rows(db, source):
        sums, codes, merged = out[(r.route, period_of(r.minute), r.env, r.model)]
        for name in SUMMED:
            sums[name] += getattr(r, name)
        sums["cost_usd"] += r.cost_usd
        for code, n in r.error_codes.items():
            codes[code] += n
        for m, name in zip(merged, SKETCHES, strict=True):
            m.add(getattr(r, name))
    return out


def _counts(merged: Merged) -> tuple:
    low, counts = merged.counts()
    nonzero = counts.nonzero()[0]
    return merged.zeros, [(low + int(i), int(counts[i])) for i in nonzero]


def assert_rows_add_up(db, source, target, period_of) -> int:
    """Every `target` row is the sum of the `source` rows of its period (and no row is missing);
    how many target rows."""
    want = _sums_of(db, source, period_of)
    got = {(h.route, h.minute, h.env, h.model): h for h in _rows(db, target)}
    assert set(got) == set(want)
    for key, (sums, codes, merged) in want.items():
        h = got[key]
        assert {name: getattr(h, name) for name in SUMMED} == {n: int(sums[n]) for n in SUMMED}
        assert h.cost_usd == pytest.approx(sums["cost_usd"], rel=1e-12)
        assert h.error_codes == dict(codes)
        for m, name in zip(merged, SKETCHES, strict=True):
            mine = Merged()
            mine.add(getattr(h, name))
            assert (getattr(h, name) is None) == (m.count == 0)
            assert _counts(mine) == _counts(m), name
    return len(got)


def _assert_hours_match_minutes(db) -> int:
    return assert_rows_add_up(db, EventRollup, EventRollupHour, lambda m: m.replace(minute=0))


@pytest.mark.parametrize("seed", [1, 2])
def test_hour_rows_are_the_sum_of_their_minute_rows(db, seed):
    _seed(db, seed)
    run = roll_up(db, LATER, batch=97)  # many batches: an hour is rewritten several times
    assert run.caught_up
    assert _assert_hours_match_minutes(db) >= 2 * 5


def test_a_late_event_rerolls_its_hour(db):
    _store(db, [{"route": "r", "ts": NOW - timedelta(hours=3, minutes=30 - m), "duration_ms": 10.0}
                for m in range(5)])
    roll_up(db, LATER)
    _store(db, [{"route": "r", "ts": NOW - timedelta(hours=3, minutes=40), "duration_ms": 5000.0}],
           now=NOW + timedelta(minutes=1))  # a minute of the same hour not rolled up before
    roll_up(db, LATER + timedelta(minutes=1))
    (hour,) = _rows(db, EventRollupHour)
    assert (hour.minute, hour.calls) == (NOW - timedelta(hours=4), 6)  # 10:00, with 10:20
    merged = Merged()
    merged.add(hour.duration_sketch)
    assert merged.values_at_ranks([6]) == [pytest.approx(5000.0, rel=0.01)]
    _assert_hours_match_minutes(db)


def test_purging_rollups_removes_the_hours_that_end_by_the_cutoff(db):
    _store(db, [{"route": "r", "ts": NOW - timedelta(hours=h, minutes=10)} for h in range(1, 6)])
    roll_up(db, LATER)
    cutoff = NOW - timedelta(hours=3, minutes=30)  # inside the hour from NOW - 4 h
    deleted = purge_rollups(db, cutoff, batch=1)  # one row per transaction, minutes then hours
    assert deleted == 2 + 2  # the minutes 08:50 and 09:50, the hours 08:00 and 09:00
    hours = sorted(h.minute for h in _rows(db, EventRollupHour))
    assert hours == [NOW - timedelta(hours=h) for h in (4, 3, 2)]  # 10:00 ends after the cutoff
    assert [r.minute for r in _rows(db, EventRollup)] != [] and all(
        r.minute >= cutoff for r in _rows(db, EventRollup))


def test_the_rollup_path_reads_whole_hours_from_hour_rows(db):
    _seed(db, 3, hours=8)
    roll_up(db, LATER)
    start, end = NOW - timedelta(hours=7, minutes=20, seconds=5), NOW - timedelta(seconds=17)
    with db.read() as session:
        exact = stats_for(session, "support.reply", start, end, path="exact")
        _assert_agree(exact, stats_for(session, "support.reply", start, end, path="rollups"))
    whole = plan([start, end], NOW).hours
    assert [(a, b) for _i, a, b in whole] == [(NOW - timedelta(hours=7), NOW - timedelta(hours=1))]
    with db.write() as session:  # the minutes of the whole hours go: the answer must not change
        session.execute(delete(EventRollup).where(EventRollup.minute >= whole[0][1],
                                                  EventRollup.minute < whole[0][2]))
    with db.read() as session:
        _assert_agree(exact, stats_for(session, "support.reply", start, end, path="rollups"))
    with db.write() as session:  # and without the hour rows the calls are missing
        session.execute(delete(EventRollupHour))
    with db.read() as session:
        assert stats_for(session, "support.reply", start, end, path="rollups").calls < exact.calls


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_migration_0016_builds_the_hours_of_stored_minutes_and_goes_back(backend, tmp_path):
    with database_for(backend, tmp_path) as db:
        _seed(db, 4)
        roll_up(db, LATER)
        before = sorted((h.route, h.minute, h.env, h.model or "", h.calls, h.duration_sketch or b"")
                        for h in _rows(db, EventRollupHour))
        _downgrade(db, "0015")  # the hour table goes, the minutes stay
        with db.read() as session:
            assert session.execute(select(func.count()).select_from(EventRollup)).scalar() > 0
            tables = session.get_bind().dialect.get_table_names(session.connection())
        assert "event_rollups_hourly" not in tables
        upgrade(db)
        assert current_revision(db) == head_revision(db)
        after = sorted((h.route, h.minute, h.env, h.model or "", h.calls, h.duration_sketch or b"")
                       for h in _rows(db, EventRollupHour))
        assert after == before and len(after) >= 10
        _assert_hours_match_minutes(db)
