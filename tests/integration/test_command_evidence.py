"""attach, note, events and sample through the command core (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from llm_incident.commands.core import CommandCore, card
from llm_incident.commands.context import Context
from llm_incident.commands.replies import Actions, Note, Section
from llm_incident.console.shell import ConsoleDelivery
from llm_incident.events.ingest import ingest_events
from llm_incident.evidence.service import evidence_counts, list_evidence
from llm_incident.incidents import service as incidents

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)


def ctx(user="U_ANA", minutes=0, channel="C1"):
    return Context(user=user, channel=channel, now=NOW + timedelta(minutes=minutes))


@pytest.fixture
def setup(db):
    with db.write() as session:
        ingest_events(session, [
            {"event_id": f"ev-{i}", "route": "support.reply", "model": "gpt-4o-mini",
             "ts": (NOW - timedelta(minutes=50 - i)).isoformat(), "tokens_in": 900,
             "tokens_out": 4000 if i % 2 else 300, "duration_ms": 1200.0,
             "output_excerpt": f"answer {i}: mail bob@example.com"}
            for i in range(40)
        ], now=NOW)
    delivery = ConsoleDelivery()
    core = CommandCore(db, delivery)
    core.run("start support.reply quality weird answers", ctx())
    delivery.drain()
    return core, delivery


def text_of(reply):
    parts = [reply.text]
    for block in reply.blocks:
        if isinstance(block, Section):
            parts.append(block.text)
        elif isinstance(block, Note):
            parts.append(block.text)
    return "\n".join(parts)


def test_attach_reports_attached_and_unknown_and_relabels(setup, db):
    core, delivery = setup
    reply = core.run("attach ev-1 ev-3 no-such-id bad repeats itself 🔁", ctx()).reply
    body = text_of(reply)
    assert "2 event(s) attached or updated, 1 unknown" in reply.text
    assert "`ev-1` · `support.reply` · gpt-4o-mini · 900→4000 tok" in body
    assert "*bad* — repeats itself 🔁" in body and "`no-such-id`" in body
    assert "bob@example.com" not in body and "[email]" in body
    core.run("attach ev-1 good fine after all", ctx(minutes=1))
    with db.read() as session:
        incident = incidents.get_incident(session, 1)
        items = {i.event_id: i for i in list_evidence(session, incident)}
        entries = [e.text for e in incidents.timeline(session, incident) if e.kind == "evidence"]
        fields = dict(card(session, incident).blocks[0].fields)
    assert (items["ev-1"].label, items["ev-1"].note) == ("good", "fine after all")
    assert entries[0].startswith("attached ev-1, ev-3 as bad")
    assert "relabelled ev-1 bad → good" in entries[1]
    assert fields["Evidence"] == "2 attached · 1 good · 1 bad"
    assert delivery.drain()[1] == [1]


def test_events_lists_matches_with_label_buttons(setup):
    core, _ = setup
    reply = core.run('events tokens_out > 3000 AND route = "support.reply" limit 3', ctx()).reply
    rows = [b for b in reply.blocks if isinstance(b, Section) and b.text.startswith("`ev-")]
    assert [r.text.split("`")[1] for r in rows] == ["ev-39", "ev-37", "ev-35"]
    actions = [b for b in reply.blocks if isinstance(b, Actions)]
    assert [b.command for b in actions[0].buttons] == ["attach #1 ev-39 good", "attach #1 ev-39 bad"]
    bad = core.run("events tokens_out >", ctx()).reply
    assert "bad filter at column" in text_of(bad)
    assert "No events match" in core.run('events route = "nope"', ctx()).reply.text


def test_sample_posts_events_and_progress_updates_in_place(setup, db):
    core, delivery = setup
    reply = core.run("sample support.reply 5", ctx(minutes=2)).reply
    assert "Posted 5 events" in reply.text
    posts, _ = delivery.drain()
    progress, *events = posts
    assert "0/5 labelled, 0 bad" in progress.reply.text and len(events) == 5
    first = events[0]
    bad_button = next(b for b in first.reply.blocks if isinstance(b, Actions)).buttons[1]
    core.run(bad_button.command, ctx(minutes=3))
    posts, _ = delivery.drain()
    assert [p.replace for p in posts] == [True, True]
    assert posts[0].key == progress.key and "1/5 labelled, 1 bad" in posts[0].reply.text
    assert posts[1].key == first.key and "labelled *bad* by <@U_ANA>" in text_of(posts[1].reply)
    again = core.run("sample support.reply 5", ctx(minutes=4))
    ids_again = {p.key for p in delivery.drain()[0][1:]}
    assert first.key not in ids_again and "Posted" in again.reply.text


def test_sample_is_reproducible_and_note_form(setup, db):
    core, delivery = setup
    core.run("sample support.reply 4", ctx())
    first = [p.key for p in delivery.drain()[0]]
    # same incident, route and data -> same pick (a second incident elsewhere draws its own)
    with db.write() as session:
        incident = incidents.get_incident(session, 1)
        entry = [e for e in incidents.timeline(session, incident) if e.kind == "sample"][0]
    assert [k.rsplit(":", 1)[1] for k in first[1:]] == entry.after["event_ids"]
    modal = core.run(f"note #1 {entry.after['event_ids'][0]}", ctx()).modal
    assert modal.kind == "note"
    saved = core.submit("note", {"note": "hallucinated a refund policy"}, modal.context, ctx())
    assert saved.reply.text.startswith("Noted on")
    empty = core.submit("note", {"note": " "}, modal.context, ctx())
    assert "empty" in empty.reply.text
    with db.read() as session:
        assert evidence_counts(session, incidents.get_incident(session, 1)).attached == 1


def test_evidence_verbs_need_an_incident(db):
    core = CommandCore(db, ConsoleDelivery())
    assert "no open incident" in core.run("attach ev-1 bad", ctx()).reply.text
    assert "Usage: `/llm-incident attach" in text_of(core.run("attach", ctx()).reply)


@pytest.mark.parametrize("command", [
    'sample support.reply 5 tokens_out > 3000',
    'sample support.reply 5 tokens_out > 3000 AND NOT contains_banned = true',
    'events tokens_out > 3000 AND route = "support.reply" limit 5',
])
def test_every_verb_that_takes_a_filter_applies_it(setup, db, command):
    core, delivery = setup
    reply = core.run(command, ctx(minutes=2)).reply
    assert "Something went wrong" not in reply.text and "bad filter" not in text_of(reply)
    if command.startswith("sample"):
        events = delivery.drain()[0][1:]
        assert "Posted 5 events" in reply.text and len(events) == 5
        shown = [text_of(p.reply) for p in events]
        assert all("→4000 tok" in t for t in shown), shown  # only the long answers
    else:
        assert text_of(reply).count("→4000 tok") == 5 and "→300 tok" not in text_of(reply)
    bad = core.run(command.replace("> 3000", "> > 3000"), ctx(minutes=3)).reply
    assert "bad filter at column" in text_of(bad)
