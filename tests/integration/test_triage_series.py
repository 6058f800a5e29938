"""The per-minute series of a route on SQLite and PostgreSQL, against a plain-Python reference."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert

from llm_incident.events.models import Event
from llm_incident.metrics.percentiles import reference_percentile
from llm_incident.metrics.scope import C, Scope
from llm_incident.metrics.stats import stats_for
from llm_incident.triage.series import MINUTE, minute_series
from tests.triage_scenarios import generate, insert_scenario

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
START = NOW - timedelta(minutes=40)
ROUTE = "series.route"
STATS = ("flagged_rate", "error_rate", "retry_share", "error_code_rate:429",
         "error_code_rate:unknown", "p95_duration_ms", "p95_tokens_out", "avg_tokens_in",
         "cost_per_call_usd", "calls_per_min")


def _edge_cases() -> list[dict]:
    """Calls that test the conventions: banned phrase, error without code, code on an ok status,
    unpriced, NULL columns, minute boundaries, outside the window, another route."""
    base = {"route": ROUTE, "env": "prod", "model": "m", "provider": "p", "region": "r",
            "customer_tier": "free", "tokens_in": 10, "tokens_out": 20, "duration_ms": 30.0,
            "status": "ok", "error_code": None, "contains_banned": False, "cost_usd": 0.01,
            "priced": True, "prompt_id": None, "prompt_version": None, "attempt": 1,
            "metadata": {}}
    at = START + timedelta(minutes=5)
    cases = [
        {"ts": at, "contains_banned": True},
        {"ts": at, "status": "error", "tokens_out": None, "cost_usd": None, "priced": False},
        {"ts": at + timedelta(seconds=59.999), "error_code": "429", "attempt": 3},
        {"ts": at + MINUTE, "priced": False, "cost_usd": None, "duration_ms": None},
        {"ts": at + MINUTE, "priced": True, "cost_usd": None, "tokens_in": None},
        {"ts": START - timedelta(microseconds=1), "tokens_out": 10**6},
        {"ts": NOW, "tokens_out": 10**6},
        {"ts": at, "route": "other.route", "tokens_out": 10**6},
    ]
    return [{**base, **case, "event_id": f"edge-{i}", "received_at": case["ts"]}
            for i, case in enumerate(cases)]


def _reference(events: list[dict], stat: str, first: datetime, stop: datetime):
    """The stat over [first, stop) computed from the event dicts, as metrics.stats defines it."""
    calls = [e for e in events if e["route"] == ROUTE and first <= e["ts"] < stop]
    if stat == "calls_per_min":
        return len(calls) / ((stop - first) / MINUTE)
    if not calls:
        return None

    def error(e):
        return e["status"] == "error" or e["error_code"] is not None
    share = {
        "flagged_rate": lambda e: e["status"] == "flagged" or e["contains_banned"],
        "error_rate": error,
        "retry_share": lambda e: e["attempt"] > 1,
        "error_code_rate:429": lambda e: error(e) and e["error_code"] == "429",
        "error_code_rate:unknown": lambda e: error(e) and e["error_code"] is None,
    }
    if stat in share:
        return sum(1 for e in calls if share[stat](e)) / len(calls)
    if stat == "cost_per_call_usd":
        priced = [e["cost_usd"] or 0.0 for e in calls if e["priced"]]
        return sum(priced) / len(priced) if priced else None
    column = {"p95_duration_ms": "duration_ms", "p95_tokens_out": "tokens_out",
              "avg_tokens_in": "tokens_in"}[stat]
    values = [e[column] for e in calls if e[column] is not None]
    if stat == "avg_tokens_in":
        return sum(values) / len(values) if values else None
    found = reference_percentile(values, 95.0)
    return None if found is None else float(found)


@pytest.fixture
def loaded(db):
    scenario = generate("provider_429", 30, seed=3, now=NOW, history=timedelta(minutes=45),
                        route=ROUTE)
    for event in scenario.events[::97]:
        event["status"] = "flagged"
    edges = _edge_cases()
    with db.write() as session:
        insert_scenario(session, scenario)
        session.execute(insert(Event.__table__), edges)
    return db, scenario.events + edges


def test_per_minute_values_match_the_reference(loaded):
    db, events = loaded
    with db.read() as session:
        series = minute_series(session, ROUTE, START, NOW)
    assert series.minutes[0] == START and series.minutes[-1] == NOW - MINUTE
    assert len(series.minutes) == 40
    assert series.calls(START, NOW) == len(
        [e for e in events if e["route"] == ROUTE and START <= e["ts"] < NOW])
    for stat in STATS:
        expected = [_reference(events, stat, m, m + MINUTE) for m in series.minutes]
        got = series.values(stat)
        assert got == pytest.approx(expected, rel=1e-12), stat


def test_window_values_equal_metrics_stats(loaded):
    db, events = loaded
    first, stop = START + timedelta(minutes=3), START + timedelta(minutes=31)
    with db.read() as session:
        series = minute_series(session, ROUTE, START, NOW)
        stats = stats_for(session, ROUTE, first, stop)
    assert series.calls(first, stop) == stats.calls
    for stat in ("flagged_rate", "error_rate", "retry_share", "p95_duration_ms",
                 "p95_tokens_out", "avg_tokens_in", "cost_per_call_usd", "calls_per_min"):
        assert series.value(stat, first, stop) == pytest.approx(getattr(stats, stat),
                                                                rel=1e-9), stat
        assert series.value(stat, first, stop) == pytest.approx(
            _reference(events, stat, first, stop), rel=1e-9), stat
    for code, count in stats.error_codes.items():
        assert series.value(f"error_code_rate:{code}", first, stop) == pytest.approx(
            count / stats.calls)


def test_samples_are_the_raw_values(loaded):
    db, events = loaded
    first, stop = START + timedelta(minutes=5), START + timedelta(minutes=7)
    with db.read() as session:
        series = minute_series(session, ROUTE, START, NOW)
    inside = [e for e in events if e["route"] == ROUTE and first <= e["ts"] < stop]
    assert sorted(series.samples("p95_tokens_out", first, stop)) == sorted(
        float(e["tokens_out"]) for e in inside if e["tokens_out"] is not None)
    assert sorted(series.samples("error_rate", first, stop)) == sorted(
        float(e["status"] == "error" or e["error_code"] is not None) for e in inside)
    assert series.samples("calls_per_min", first, stop) == [
        float(len([e for e in inside if m <= e["ts"] < m + MINUTE]))
        for m in (first, first + MINUTE)]


def test_window_is_widened_to_whole_minutes_and_scoped(loaded):
    db, events = loaded
    with db.read() as session:
        series = minute_series(session, ROUTE, START + timedelta(seconds=20),
                               NOW - timedelta(seconds=30), scope=Scope(region="eu-west-1"),
                               where=C.attempt == 1)
        empty = minute_series(session, "no.such.route", START, NOW)
    assert series.start == START and series.end == NOW
    scoped = [e for e in events if e["route"] == ROUTE and e["region"] == "eu-west-1"
              and e["attempt"] == 1 and START <= e["ts"] < NOW]
    assert series.calls(START, NOW) == len(scoped)
    assert series.values("calls_per_min") == [
        float(len([e for e in scoped if m <= e["ts"] < m + MINUTE])) for m in series.minutes]
    assert empty.calls(START, NOW) == 0
    assert empty.values("p95_duration_ms") == [None] * 40
    assert empty.value("error_rate", START, NOW) is None
    with pytest.raises(ValueError):
        series.values("no_such_stat")
