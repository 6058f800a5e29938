"""Rollups on both backends: per-minute rows equal the raw aggregates (counts exact, percentiles
within the sketch's 1 %), late events and repeated runs, the cardinality bound, frozen minutes."""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from llm_incident.events.ingest import ingest_events
from llm_incident.events.models import Event
from llm_incident.metrics.percentiles import nearest_rank
from llm_incident.rollups.build import MAX_GROUPS, OTHER_MODEL, complete_until, roll_up
from llm_incident.rollups.models import EventRollup
from llm_incident.rollups.sketch import RELATIVE_ACCURACY, Merged
from tests.integration.test_metrics_stats import _random_events

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(minutes=5)  # every event ingested at NOW is settled by then
_ids = itertools.count()


def _store(db, events, now=NOW):
    for event in events:
        event.setdefault("event_id", f"r{next(_ids)}")
        if isinstance(event.get("ts"), datetime):
            event["ts"] = event["ts"].isoformat()
    with db.write() as session:
        result = ingest_events(session, events, now=now)
    assert not result.rejected


def _rollups(db) -> list[EventRollup]:
    with db.read() as session:
        return list(session.execute(select(EventRollup)).scalars())


def _raw(db) -> list[Event]:
    with db.read() as session:
        return list(session.execute(select(Event)).scalars())


def _key(route, ts, env, model):
    return route, ts.replace(second=0, microsecond=0), env, model


def _raw_groups(events: list[Event]) -> dict:
    groups: dict = defaultdict(lambda: Counter())
    for e in events:
        g = groups[_key(e.route, e.ts, e.env, e.model)]
        g["calls"] += 1
        g["flagged"] += e.status == "flagged" or e.contains_banned
        is_error = e.status == "error" or e.error_code is not None
        g["errors"] += is_error
        if is_error:
            g["code:" + (e.error_code or "unknown")] += 1
        g["retries"] += e.attempt > 1
        g["priced"] += e.priced
        g["n_tokens_in"] += e.tokens_in is not None
        g["sum_tokens_in"] += e.tokens_in or 0
        g["n_tokens_out"] += e.tokens_out is not None
        g["sum_tokens_out"] += e.tokens_out or 0
    return groups


def _rollup_groups(rows: list[EventRollup]) -> dict:
    groups: dict = {}
    for r in rows:
        g = Counter(calls=r.calls, flagged=r.flagged, errors=r.errors, retries=r.retries,
                    priced=r.priced, n_tokens_in=r.n_tokens_in, sum_tokens_in=r.sum_tokens_in,
                    n_tokens_out=r.n_tokens_out, sum_tokens_out=r.sum_tokens_out)
        g.update({"code:" + code: n for code, n in r.error_codes.items()})
        key = (r.route, r.minute, r.env, r.model)
        assert key not in groups, "one row per route, minute, env and model"
        groups[key] = +g
    return groups


def _assert_within_bound(merged: Merged, exact_values: list[float]) -> None:
    ordered = sorted(exact_values)
    assert merged.count == len(ordered)
    for p in (0.0, 1.0, 50.0, 95.0, 99.0, 100.0):
        rank = nearest_rank(p, len(ordered))
        (approx,) = merged.values_at_ranks([rank])
        exact = ordered[rank - 1]
        assert abs(approx - exact) <= RELATIVE_ACCURACY * exact + 1e-9, (p, approx, exact)


@pytest.mark.parametrize("seed", [1, 2])
def test_rollups_equal_raw_aggregates(db, seed):
    rnd = random.Random(seed)
    events = []
    for route in ("support.reply", "search.answer"):
        events += _random_events(rnd, route, 400, NOW - timedelta(hours=2), timedelta(hours=2))
    _store(db, events)
    run = roll_up(db, LATER, batch=150)  # several batches
    assert run.caught_up and run.events == 800

    raw, rows = _raw(db), _rollups(db)
    expected = {k: +g for k, g in _raw_groups(raw).items()}
    assert _rollup_groups(rows) == expected  # every count exact, per minute, env and model
    by_key = defaultdict(float)
    for e in raw:
        if e.priced:
            by_key[e.route] += e.cost_usd
    for route in ("support.reply", "search.answer"):
        mine = [r for r in rows if r.route == route]
        assert sum(r.cost_usd for r in mine) == pytest.approx(by_key[route], rel=1e-9)
        for column, sketch in (("duration_ms", "duration_sketch"), ("tokens_in", "tokens_in_sketch"),
                               ("tokens_out", "tokens_out_sketch")):
            merged = Merged()
            for r in mine:
                merged.add(getattr(r, sketch))
            _assert_within_bound(merged, [getattr(e, column) for e in raw
                                          if e.route == route and getattr(e, column) is not None])
    with db.read() as session:
        assert complete_until(session) == (LATER - timedelta(seconds=30)).replace(second=0)


def test_late_events_and_repeated_runs_never_double_count(db):
    _store(db, [{"route": "r", "ts": NOW - timedelta(minutes=3) + timedelta(seconds=s),
                 "duration_ms": 10.0} for s in range(5)])
    roll_up(db, LATER)
    roll_up(db, LATER)  # nothing new: same rows
    _store(db, [{"route": "r", "ts": NOW - timedelta(minutes=2, seconds=30), "duration_ms": 90.0}],
           now=NOW + timedelta(minutes=1))  # a late event for a minute already rolled up
    roll_up(db, LATER + timedelta(minutes=1))
    rows = _rollups(db)
    assert [(r.minute, r.calls) for r in rows] == [(NOW - timedelta(minutes=3), 6)]
    merged = Merged()
    merged.add(rows[0].duration_sketch)
    assert merged.values_at_ranks([6]) == [pytest.approx(90.0, rel=RELATIVE_ACCURACY)]


def test_ids_received_within_the_settle_time_are_read_again(db):
    _store(db, [{"route": "r", "ts": NOW - timedelta(seconds=5)}])
    roll_up(db, NOW + timedelta(seconds=1))  # received a second ago: counted, not yet done
    assert [r.calls for r in _rollups(db)] == [1]
    _store(db, [{"route": "r", "ts": NOW - timedelta(seconds=4)}])
    run = roll_up(db, NOW + timedelta(seconds=2))
    assert run.events == 2 and [r.calls for r in _rollups(db)] == [2]
    assert roll_up(db, LATER).events == 2  # settled now; then nothing is read again
    assert roll_up(db, LATER).events == 0


def test_models_past_the_bound_fold_into_other(db):
    events = [{"route": "r", "ts": NOW - timedelta(minutes=2), "model": f"m{i:03d}"}
              for i in range(MAX_GROUPS + 10) for _ in range(1 + (i < 5))]
    _store(db, events)
    roll_up(db, LATER)
    rows = _rollups(db)
    assert len(rows) == MAX_GROUPS
    assert sum(r.calls for r in rows) == len(events)
    other = [r for r in rows if r.model == OTHER_MODEL]
    assert len(other) == 1 and other[0].calls == 11
    assert {r.model for r in rows if r.calls == 2} == {f"m{i:03d}" for i in range(5)}


def test_minutes_past_retention_with_rollups_are_frozen(db):
    old = NOW - timedelta(days=40)
    _store(db, [{"route": "r", "ts": old, "event_id": "a"}], now=old)
    roll_up(db, old + timedelta(minutes=5))
    with db.write() as session:  # as retention would: the raw event is gone
        session.execute(Event.__table__.delete())
    _store(db, [{"route": "r", "ts": old + timedelta(seconds=1)},  # late, for a frozen minute
                {"route": "r", "ts": old + timedelta(minutes=7)}])  # old, never rolled up
    roll_up(db, LATER, frozen_before=NOW - timedelta(days=30))
    rows = sorted(_rollups(db), key=lambda r: r.minute)
    assert [(r.minute, r.calls) for r in rows] == [(old, 1), (old + timedelta(minutes=7), 1)]
    with db.read() as session:
        assert session.execute(select(func.count()).select_from(EventRollup)).scalar() == 2
