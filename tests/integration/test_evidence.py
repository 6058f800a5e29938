"""Evidence on both backends: attach, relabel, counts, order, sampling, export."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import delete

from llm_incident.events.ingest import ingest_events
from llm_incident.events.models import Event
from llm_incident.evidence import sampling, service
from llm_incident.evidence.export import COLUMNS, export_rows, to_csv, to_jsonl
from llm_incident.evidence.sampling import sample_events
from llm_incident.evidence.service import (
    Counts, EvidenceError, attach, evidence_counts, list_evidence, set_label, set_note,
)
from llm_incident.incidents.service import StartRequest, get_incident, start_incident
from llm_incident.metrics.filters import FilterError

T0 = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)


def start(session, now=T0, routes=("support.reply",)):
    incident, _ = start_incident(session, StartRequest(commander="U1", routes=routes), now=now)
    return incident


def seed(db, items, now=T0 + timedelta(hours=2)):
    with db.write() as session:
        result = ingest_events(session, items, now=now)
    assert result.accepted == len(items)


def traffic(route, start, count, step=timedelta(seconds=30), prefix=None, **fields):
    prefix = prefix or route
    return [{"event_id": f"{prefix}-{i}", "route": route, "ts": (start + i * step).isoformat(),
             **fields} for i in range(count)]


EVENTS = [
    {"event_id": "ev-1", "route": "support.reply", "ts": (T0 + timedelta(minutes=1)).isoformat(),
     "model": "gpt-4o", "tokens_in": 120, "tokens_out": 2400, "status": "flagged",
     "output_excerpt": "Sure, here is the refund policy", "metadata": {"user": "u1", "plan": "pro"}},
    {"event_id": "ev-2", "route": "support.reply", "ts": (T0 + timedelta(minutes=2)).isoformat(),
     "model": "gpt-4o-mini", "tokens_in": 80, "tokens_out": 90, "status": "ok",
     "contains_banned": True, "input_excerpt": "hi, \"quoted\", comma", "output_excerpt": "ok"},
    {"event_id": "ev-3", "route": "search.answer", "ts": (T0 + timedelta(minutes=3)).isoformat(),
     "status": "error", "error_code": 429},
]


@pytest.fixture
def seeded(db):
    seed(db, EVENTS)
    with db.write() as session:
        start(session)
    return db


def test_attach_known_and_unknown_ids(seeded):
    with seeded.write() as session:
        incident = get_incident(session, 1)
        result = attach(session, incident, ["ev-1", "nope", " ev-2 ", "ev-1", ""], label="bad",
                        note="refund hallucination", actor="U2", now=T0 + timedelta(minutes=5))
    assert [i.event_id for i in result.attached] == ["ev-1", "ev-2"]
    assert result.unknown_ids == ("nope",)
    assert result.updated == () and result.new_ids == ("ev-1", "ev-2")
    first = result.attached[0]
    assert (first.label, first.note, first.labelled_by) == ("bad", "refund hallucination", "U2")
    assert first.event.route == "support.reply" and first.event.model == "gpt-4o"
    assert (first.event.tokens_in, first.event.tokens_out) == (120, 2400)
    assert first.event.status == "flagged"
    assert first.event.output_excerpt == "Sure, here is the refund policy"
    with seeded.read() as session:
        incident = get_incident(session, 1)
        assert evidence_counts(session, incident) == Counts(attached=2, good=0, bad=2)
        assert "nope" not in [i.event_id for i in list_evidence(session, incident)]


def test_reattach_updates_and_reports_before_after(seeded):
    with seeded.write() as session:
        incident = get_incident(session, 1)
        attach(session, incident, ["ev-1"], label="bad", note="wrong", actor="U2", now=T0)
    later = T0 + timedelta(minutes=10)
    with seeded.write() as session:
        incident = get_incident(session, 1)
        result = attach(session, incident, ["ev-1", "ev-2"], label="GOOD", actor="U3", now=later)
    assert result.new_ids == ("ev-2",)
    (update,) = result.updated
    assert (update.label_before, update.label_after) == ("bad", "good")
    assert (update.note_before, update.note_after) == ("wrong", "wrong")  # no note: kept
    assert update.changed and update.describe() == "relabelled ev-1 bad → good"
    item = result.attached[0]
    assert (item.label, item.labelled_by, item.created_at, item.updated_at) == ("good", "U3", T0,
                                                                                 later)
    with seeded.write() as session:
        incident = get_incident(session, 1)
        again = attach(session, incident, ["ev-1"], actor="U4", now=later + timedelta(minutes=1))
    assert not again.updated[0].changed and again.updated[0].describe() == ""
    assert again.attached[0].labelled_by == "U3"  # nothing changed, nobody relabelled it


def test_set_label_and_note_for_one_event(seeded):
    with seeded.write() as session:
        incident = get_incident(session, 1)
        first = set_label(session, incident, "ev-2", label="good", actor="U2", now=T0)
        assert first.update is None and first.item.label == "good"
        noted = set_note(session, incident, "ev-2", "polite but vague", actor="U3", now=T0)
        assert noted.item.label == "good" and noted.item.note == "polite but vague"
        assert noted.update.describe() == "note on ev-2: polite but vague"
        flipped = set_label(session, incident, "ev-2", label="bad", actor="U2", now=T0)
        assert flipped.update.describe() == "relabelled ev-2 good → bad"
        with pytest.raises(EvidenceError, match="no stored event"):
            set_label(session, incident, "missing", label="bad", actor="U2", now=T0)
        with pytest.raises(EvidenceError, match="good or bad"):
            set_label(session, incident, "ev-2", label="meh", actor="U2", now=T0)
        with pytest.raises(EvidenceError, match="at least one"):
            attach(session, incident, [" "], actor="U2", now=T0)


def test_a_concurrent_first_attach_turns_into_an_update(seeded):
    """Two attaches of one event racing: the loser's insert hits the unique key and updates."""
    with seeded.write() as session:
        incident = get_incident(session, 1)
        attach(session, incident, ["ev-1"], label="bad", actor="U2", now=T0)
        row, update = service._upsert(session, incident, "ev-1", None, "good", "n", "U3", T0)
        assert (row.label, row.note) == ("good", "n") and update.label_before == "bad"
    with seeded.read() as session:
        assert evidence_counts(session, get_incident(session, 1)) == Counts(1, 1, 0)


def test_evidence_survives_event_deletion_and_can_be_relabelled(seeded):
    with seeded.write() as session:
        attach(session, get_incident(session, 1), ["ev-1"], label="bad", actor="U2", now=T0)
    with seeded.write() as session:
        session.exec(delete(Event).where(Event.event_id == "ev-1"))
    with seeded.write() as session:
        incident = get_incident(session, 1)
        (item,) = list_evidence(session, incident)
        assert item.event_id == "ev-1" and item.event is None
        result = attach(session, incident, ["ev-1"], label="good", actor="U2", now=T0)
        assert result.unknown_ids == () and result.updated[0].label_after == "good"
        rows = export_rows(session, incident)
    assert rows[0]["event_id"] == "ev-1" and rows[0]["route"] is None


def test_counts_and_order_bad_then_good_then_unlabelled(seeded):
    seed(seeded, traffic("support.reply", T0, 6, prefix="x"))
    plan = [("x-0", None), ("x-1", "good"), ("x-2", "bad"), ("x-3", None), ("x-4", "bad"),
            ("x-5", "good")]
    for minute, (event_id, label) in enumerate(plan):
        with seeded.write() as session:
            attach(session, get_incident(session, 1), [event_id], label=label, actor="U2",
                   now=T0 + timedelta(minutes=minute))
    with seeded.write() as session:  # a second incident's evidence is not counted in the first
        other = start(session, now=T0 + timedelta(minutes=30))
        attach(session, other, ["x-0"], label="bad", actor="U2", now=T0)
    with seeded.read() as session:
        incident = get_incident(session, 1)
        order = [i.event_id for i in list_evidence(session, incident)]
        counts = evidence_counts(session, incident)
        assert evidence_counts(session, get_incident(session, 2)) == Counts(1, 0, 1)
    assert order == ["x-2", "x-4", "x-1", "x-5", "x-0", "x-3"]
    assert counts == Counts(attached=6, good=2, bad=2) and counts.unlabelled == 2


# --- sampling -----------------------------------------------------------------------------------


def sample_ids(db, number=1, **kwargs):
    kwargs.setdefault("route", "r")
    kwargs.setdefault("now", T0 + timedelta(hours=1))
    with db.read() as session:
        return [e.event_id for e in sample_events(session, get_incident(session, number), **kwargs)]


@pytest.fixture
def window(db):
    """Incident #1 on route r from T0 to T0+1h with 120 events inside, some outside and elsewhere."""
    seed(db, traffic("r", T0, 120)
         + traffic("r", T0 - timedelta(hours=3), 50, prefix="before")
         + traffic("other", T0, 50))
    with db.write() as session:
        start(session, routes=("r",))
    return db


def test_sample_is_reproducible_from_the_window_and_route(window):
    first = sample_ids(window)
    assert len(first) == 20 == len(set(first))
    assert all(e.startswith("r-") for e in first)  # not before the incident, not another route
    assert sample_ids(window) == first
    five = sample_ids(window, n=5)
    assert len(five) == 5 and sample_ids(window, n=5) == five
    numbers = [int(e.split("-")[1]) for e in first]
    assert numbers == sorted(numbers)  # oldest first
    with window.write() as session:
        start(session, now=T0, routes=("r",))
    assert sample_ids(window, number=2) != first  # seeded per incident


def test_sample_excludes_labelled_but_not_unlabelled_evidence(window):
    first = sample_ids(window)
    with window.write() as session:
        incident = get_incident(session, 1)
        attach(session, incident, first[:10], label="bad", actor="U2", now=T0)
        attach(session, incident, first[10:12], actor="U2", now=T0)  # attached, unlabelled
    second = sample_ids(window)
    assert len(second) == 20 and not set(second) & set(first[:10])
    with window.read() as session:
        labelled = {i.event_id for i in list_evidence(session, get_incident(session, 1)) if i.label}
    assert labelled == set(first[:10])


def test_sample_n_is_capped_and_checked(window):
    assert len(sample_ids(window, n=500)) == sampling.MAX_SAMPLE == 30
    with pytest.raises(EvidenceError):
        sample_ids(window, n=0)


def test_sample_filter(window):
    seed(window, traffic("r", T0 + timedelta(seconds=5), 8, prefix="slow", step=timedelta(minutes=5),
                         duration_ms=9000))
    picked = sample_ids(window, filter_where="duration_ms > 5000")
    assert sorted(picked) == sorted(f"slow-{i}" for i in range(8))
    assert sample_ids(window, filter_where="  ") == sample_ids(window)
    with pytest.raises(FilterError):
        sample_ids(window, filter_where="duration_ms >")


def test_sample_falls_back_to_the_last_hour_when_the_window_is_thin(db):
    now = T0 + timedelta(hours=1)
    seed(db, traffic("r", now - timedelta(minutes=29, seconds=30), 30, step=timedelta(minutes=1))
         + traffic("r", now - timedelta(hours=3), 10, prefix="old"))
    with db.write() as session:
        start(session, now=now - timedelta(minutes=5), routes=("r",))  # 5 events in its window
    picked = sample_ids(db, now=now)
    assert len(picked) == 20 and all(e.startswith("r-") for e in picked)
    assert sample_ids(db, now=now, n=3)  # enough in the window itself: no fallback needed
    assert all(int(e.split("-")[1]) >= 25 for e in sample_ids(db, now=now, n=3))


def test_sample_of_a_closed_incident_ends_at_close(db):
    seed(db, traffic("r", T0, 60, step=timedelta(minutes=1)))
    with db.write() as session:
        incident = start(session, routes=("r",))
        incident.closed_at = T0 + timedelta(minutes=29, seconds=30)
        session.add(incident)
    picked = sample_ids(db, now=T0 + timedelta(hours=5))
    assert len(picked) == 20 and all(int(e.split("-")[1]) < 30 for e in picked)


def test_sample_thins_huge_windows_in_sql(window, monkeypatch):
    monkeypatch.setattr(sampling, "MAX_CANDIDATES", 40)
    picked = sample_ids(window)
    assert len(picked) == 20 == len(set(picked)) and all(e.startswith("r-") for e in picked)
    numbers = [int(e.split("-")[1]) for e in picked]
    assert min(numbers) < 30 and max(numbers) >= 90  # thinned over the whole window
    assert sample_ids(window) == picked


# --- export ---------------------------------------------------------------------------------------


def test_export_rows_in_both_formats(seeded):
    with seeded.write() as session:
        incident = get_incident(session, 1)
        attach(session, incident, ["ev-2"], label="good", note='says "hi", then, leaves',
               actor="U2", now=T0 + timedelta(minutes=5))
        attach(session, incident, ["ev-1"], label="bad", note="refund", actor="U3",
               now=T0 + timedelta(minutes=6))
        second = start(session, now=T0 + timedelta(minutes=7))
        attach(session, second, ["ev-3"], actor="U4", now=T0 + timedelta(minutes=8))
    with seeded.read() as session:
        rows = export_rows(session, get_incident(session, 1))
        everything = export_rows(session)
    assert [(r["incident"], r["event_id"]) for r in everything] == [(1, "ev-1"), (1, "ev-2"),
                                                                    (2, "ev-3")]
    bad = rows[0]
    assert list(bad) == list(COLUMNS)
    assert (bad["event_id"], bad["label"], bad["note"], bad["labelled_by"]) == ("ev-1", "bad",
                                                                                 "refund", "U3")
    assert (bad["route"], bad["model"], bad["tokens_out"], bad["status"]) == (
        "support.reply", "gpt-4o", 2400, "flagged")
    assert bad["metadata"] == {"user": "u1", "plan": "pro"}
    assert bad["labelled_at"] == (T0 + timedelta(minutes=6)).isoformat()

    lines = to_jsonl(rows).splitlines()
    assert [json.loads(line) for line in lines] == rows
    assert list(json.loads(lines[0])) == list(COLUMNS)

    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert list(parsed[0]) == list(COLUMNS)
    assert json.loads(parsed[0]["metadata"]) == {"plan": "pro", "user": "u1"}
    assert parsed[0]["tokens_out"] == "2400" and parsed[0]["error_code"] == ""
    good = parsed[1]
    assert good["note"] == 'says "hi", then, leaves' and good["contains_banned"] == "true"
    assert good["input_excerpt"] == 'hi, "quoted", comma'
    assert to_csv([]) == ",".join(COLUMNS) + "\n" and to_jsonl([]) == ""
