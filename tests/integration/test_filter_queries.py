"""Filters against real databases: the same matches on SQLite and PostgreSQL for every construct."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from sqlmodel import select

from llm_incident.events.ingest import ingest_events
from llm_incident.events.models import Event
from llm_incident.metrics.filters import FilterError, compile_filter, parse_filter
from llm_incident.metrics.search import MAX_LIMIT, search_events
from tests.filter_strategies import filters, reference_match

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=timezone.utc)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).isoformat()


EVENTS = [
    {"event_id": "e1", "ts": ago(minutes=5), "route": "support.reply", "model": "gpt-4o",
     "provider": "openai", "tokens_out": 2500, "duration_ms": 900.5, "status": "flagged",
     "contains_banned": True, "prompt_version": "2.10", "output_excerpt": "Refund of 50% OK",
     "metadata": {"user": {"plan": "pro", "seats": 12}, "score": 0.9, "beta": True, "tag": "a_b",
                  "note": None}},
    {"event_id": "e2", "ts": ago(minutes=20), "route": "support.reply", "model": "gpt-4o-mini",
     "tokens_out": 150, "duration_ms": 300.0, "status": "error", "error_code": 429,
     "metadata": {"user": {"plan": "free"}, "score": 5, "beta": False, "tag": "axb",
                  "retry-count": 3}},
    {"event_id": "e3", "ts": ago(hours=2), "route": "search.answer", "model": "claude-3-5",
     "tokens_out": 2000, "status": "error", "error_code": "503", "attempt": 2,
     "metadata": {"score": "5", "beta": "true", "tag": "100%"}},
    {"event_id": "e4", "ts": ago(days=2), "route": "x' OR 1=1 --", "env": "staging",
     "metadata": {"score": 5.0, "tag": "A_B"}},
    {"event_id": "e5", "ts": ago(minutes=1), "route": "search.answer", "region": "eu-west",
     "tokens_out": None, "metadata": {}},
]

CASES = [
    # columns, operators, literals
    ('route = "support.reply"', ["e1", "e2"]),
    ("route = 'search.answer'", ["e3", "e5"]),
    ('route != "support.reply"', ["e3", "e4", "e5"]),
    ("tokens_out > 2000", ["e1"]),
    ("tokens_out >= 2000", ["e1", "e3"]),
    ("tokens_out < 2000", ["e2"]),
    ("tokens_out <= 150", ["e2"]),
    ("duration_ms > 900.25", ["e1"]),
    ("contains_banned = true", ["e1"]),
    ("contains_banned != true", ["e2", "e3", "e4", "e5"]),
    ("attempt > 1", ["e3"]),
    ("error_code = 429", ["e2"]),
    ('error_code = "503"', ["e3"]),
    ("error_code in (429, 503)", ["e2", "e3"]),
    ("prompt_version = 2.10", ["e1"]),
    ('status in ("flagged", "error")', ["e1", "e2", "e3"]),
    ('model contains "GPT"', ["e1", "e2"]),
    ('output_excerpt contains "50%"', ["e1"]),
    ('output_excerpt contains "refund"', ["e1"]),
    # null, exists, and != being the complement of =
    ("error_code = null", ["e1", "e4", "e5"]),
    ("error_code != null", ["e2", "e3"]),
    ("error_code exists", ["e2", "e3"]),
    ("model != \"gpt-4o\"", ["e2", "e3", "e4", "e5"]),
    ('NOT model = "gpt-4o"', ["e2", "e3", "e4", "e5"]),
    ("NOT tokens_out > 200", ["e2", "e4", "e5"]),
    ('region in ("eu-west", null)', ["e1", "e2", "e3", "e4", "e5"]),
    # relative and absolute time
    ("ts > now - 30m", ["e1", "e2", "e5"]),
    ("ts >= now - 2h", ["e1", "e2", "e3", "e5"]),
    ("ts < now - 1d", ["e4"]),
    (f'ts > "{ago(minutes=10)}"', ["e1", "e5"]),
    ("ts > '2026-11-26T16:50:00+02:00'", ["e1", "e5"]),
    # metadata: strings, numbers, bools, nested keys, null, exists
    ('metadata.user.plan = "pro"', ["e1"]),
    ('metadata.user.plan != "pro"', ["e2", "e3", "e4", "e5"]),
    ("metadata.user.seats >= 12", ["e1"]),
    ("metadata.score = 5", ["e2", "e4"]),
    ('metadata.score = "5"', ["e3"]),
    ("metadata.score < 1", ["e1"]),
    ("metadata.score > 0.5", ["e1", "e2", "e4"]),
    ("metadata.beta = true", ["e1"]),
    ("metadata.beta = false", ["e2"]),
    ('metadata.beta = "true"', ["e3"]),
    ("metadata.retry-count = 3", ["e2"]),
    ("metadata.note exists", ["e1"]),
    ("metadata.note = null", ["e1", "e2", "e3", "e4", "e5"]),
    ("metadata.note != null", []),
    ("metadata.user exists", ["e1", "e2"]),
    ('metadata.score in (5, "5")', ["e2", "e3", "e4"]),
    # contains treats % and _ as plain characters, case-insensitively
    ('metadata.tag contains "_"', ["e1", "e4"]),
    ('metadata.tag contains "a_b"', ["e1", "e4"]),
    ('metadata.tag contains "%"', ["e3"]),
    ('route contains "%"', []),
    ('route contains "\'"', ["e4"]),
    # precedence and grouping
    ('status = "flagged" OR status = "error" AND error_code = 503', ["e1", "e3"]),
    ('(status = "flagged" OR status = "error") AND error_code = 503', ["e3"]),
    ('NOT status = "ok" AND tokens_out > 1000', ["e1", "e3"]),
    ('NOT (status = "ok" OR tokens_out > 1000)', ["e2"]),
    ('status = "flagged" OR contains_banned = true OR tokens_out > 2000 '
     'AND metadata.user.plan = "pro"', ["e1"]),
    # injection-shaped input is just a value
    ('route = "x\' OR 1=1 --"', ["e4"]),
    ("route = 'x\\' OR 1=1 --'", ["e4"]),
    ('route = "\'; DROP TABLE events; --"', []),
    ('metadata.tag = "1\' OR \'1\'=\'1"', []),
]


@pytest.fixture
def seeded(db):
    with db.write() as session:
        result = ingest_events(session, EVENTS, now=NOW)
    assert result.accepted == len(EVENTS) and not result.rejected
    return db


def matching(db, text: str) -> list[str]:
    with db.read() as session:
        stmt = select(Event.event_id).where(compile_filter(text, now=NOW)).order_by(Event.event_id)
        return list(session.exec(stmt))


@pytest.mark.parametrize("text, expected", CASES, ids=[c[0] for c in CASES])
def test_filter_matches(seeded, text, expected):
    assert matching(seeded, text) == expected


def test_injection_shaped_filter_leaves_the_table_alone(seeded):
    assert matching(seeded, 'route = "\'; DROP TABLE events; --"') == []
    assert len(matching(seeded, "attempt >= 1")) == len(EVENTS)


def test_search_orders_limits_and_narrows_by_route(seeded):
    with seeded.read() as session:
        def ids(**kw):
            return [e.event_id for e in search_events(session, now=NOW, **kw)]

        assert ids(filter_text=None) == ["e5", "e1", "e2", "e3", "e4"]
        assert ids(filter_text="  ", order="oldest") == ["e4", "e3", "e2", "e1", "e5"]
        assert ids(filter_text="ts > now - 1h", limit=2) == ["e5", "e1"]
        assert ids(filter_text="tokens_out > 100", route="support.reply") == ["e1", "e2"]
        assert len(ids(filter_text=None, limit=MAX_LIMIT * 10)) == len(EVENTS)
        with pytest.raises(FilterError):
            ids(filter_text="tokens_out >")
        with pytest.raises(ValueError):
            ids(filter_text=None, order="sideways")
        with pytest.raises(ValueError):
            ids(filter_text=None, limit=0)


def test_limit_caps_at_the_maximum(sqlite_db):
    items = [{"event_id": f"bulk-{i}", "route": "r", "ts": ago(seconds=i)}
             for i in range(MAX_LIMIT + 5)]
    with sqlite_db.write() as session:
        ingest_events(session, items, now=NOW)
    with sqlite_db.read() as session:
        found = search_events(session, filter_text='route = "r"', now=NOW, limit=5000)
    assert len(found) == MAX_LIMIT and found[0].event_id == "bulk-0"


# ---------------------------------------------------------------- randomized differential test

def random_events(seed: int, count: int) -> list[dict]:
    rng = random.Random(seed)
    missing = object()
    pick = rng.choice
    events = []
    for i in range(count):
        meta = {
            "k": pick(["x", "X", "50%_off", "a%b_c", "pro", 5, 5.0, True, None, missing]),
            "n": pick([1, 2.5, -3, "2", True, 150, 10**15, 0, missing]),
            "flag": pick([True, False, "true", 0, None, missing]),
            "user": pick([{"plan": "pro"}, {"plan": "free"}, {"plan": 1}, "pro", missing]),
            "null": pick([1, "x", None, missing]),
        }
        events.append({
            "event_id": f"r{i:03d}",
            "ts": ago(minutes=rng.uniform(0, 180)),
            "route": pick(["support.reply", "search.answer", "a%b_c", "x' OR 1=1 --"]),
            "env": pick(["prod", "staging"]),
            "model": pick(["gpt-4o", "GPT-4o-mini", None]),
            "region": pick(["eu-west", None]),
            "status": pick(["ok", "flagged", "error"]),
            "error_code": pick([None, "429", "503", "2.10"]),
            "contains_banned": pick([True, False]),
            "tokens_in": pick([None, 0, 5, 1000]),
            "tokens_out": pick([None, 0, 150, 2000, 2001]),
            "duration_ms": pick([None, 0.5, 850.0, 1200.25]),
            "cost_usd": pick([None, 0.0, 0.5, 2.5]),
            "attempt": pick([1, 2, 5]),
            "prompt_version": pick([None, "1", "2.10"]),
            "metadata": {key: value for key, value in meta.items() if value is not missing},
        })
    return events


def test_random_filters_match_the_reference_semantics(db):
    with db.write() as session:
        assert ingest_events(session, random_events(7, 120), now=NOW).accepted == 120
    with db.read() as session:
        rows = list(session.exec(select(Event)))

    @settings(max_examples=150, deadline=None)
    @given(filters())
    def check(text):
        tree = parse_filter(text)
        expected = sorted(r.event_id for r in rows if reference_match(tree, r, NOW))
        assert matching(db, text) == expected, text

    check()
