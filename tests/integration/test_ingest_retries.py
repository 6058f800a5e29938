"""Ingest of batches that repeat stored events (client retries): the optimistic insert undoes itself
and stores only the new events, and nothing about the repeated ones leaks into the outcome."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from llm_incident.events.ingest import ingest_events
from llm_incident.events.models import Event
from llm_incident.events.routes import KnownRoute

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
T1 = NOW - timedelta(minutes=5)


def _ingest(db, items):
    with db.write() as session:
        return ingest_events(session, items, now=NOW)


def _stored(db):
    with db.read() as session:
        rows = session.execute(select(Event.event_id, Event.ts, Event.route).order_by(Event.event_id))
        return [(e, ts.astimezone(timezone.utc), r) for e, ts, r in rows]


def test_a_batch_mixing_stored_and_new_events_stores_only_the_new(db):
    assert _ingest(db, [{"event_id": "a", "route": "r", "ts": T1.isoformat()}]).accepted == 1
    earlier = (T1 - timedelta(hours=1)).isoformat()
    result = _ingest(db, [
        {"event_id": "a", "route": "other.route", "ts": earlier},  # a retry, changed: ignored
        {"event_id": "b", "route": "r", "ts": NOW.isoformat()},
        {"event_id": "c", "route": "r", "ts": NOW.isoformat(), "model": "gpt-4o-mini",
         "provider": "openai", "tokens_in": 10, "tokens_out": 5},
    ])
    assert (result.accepted, result.duplicates, result.unpriced) == (2, 1, 1)
    assert _stored(db) == [("a", T1, "r"), ("b", NOW, "r"), ("c", NOW, "r")]
    with db.read() as session:
        routes = {k.route: (k.first_seen.astimezone(timezone.utc), k.last_seen.astimezone(timezone.utc))
                  for k in session.execute(select(KnownRoute)).scalars()}
    assert routes == {"r": (T1, NOW)}  # the repeated event's route and time never count


def test_a_whole_batch_sent_again_stores_nothing(db):
    items = [{"event_id": f"e{i}", "route": "r", "ts": T1.isoformat()} for i in range(50)]
    first = _ingest(db, items)
    again = _ingest(db, items)
    assert (first.accepted, first.duplicates) == (50, 0)
    assert (again.accepted, again.duplicates, again.unpriced) == (0, 50, 0)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 50


def test_repeats_within_a_batch_and_of_stored_events_both_count_as_duplicates(db):
    _ingest(db, [{"event_id": "old", "route": "r"}])
    result = _ingest(db, [{"event_id": "new", "route": "r"}, {"event_id": "new", "route": "r"},
                          {"event_id": "old", "route": "r"}, {"route": "r"}])
    assert (result.accepted, result.duplicates) == (2, 2)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 3
