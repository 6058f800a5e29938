"""The command core against a real store (SQLite and PostgreSQL), through the console delivery."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from llm_incident.changes import ChangeIn, ChangeKind, record_change
from llm_incident.commands.core import CommandCore
from llm_incident.commands.context import Context
from llm_incident.commands.replies import Section, Table, Target
from llm_incident.console.shell import ConsoleDelivery
from llm_incident.events.ingest import ingest_events
from llm_incident.incidents import service as incidents

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)


def ctx(user="U_ANA", channel="C_ONCALL", minutes=0, key=None):
    return Context(user=user, channel=channel, now=NOW + timedelta(minutes=minutes),
                   request_key=key)


@pytest.fixture
def core(db):
    with db.write() as session:
        events = [{"route": "support.reply", "ts": (NOW - timedelta(minutes=m)).isoformat(),
                   "tokens_out": 300 if m > 30 else 2400, "duration_ms": 900.0}
                  for m in range(1, 60)]
        ingest_events(session, events, now=NOW)
        record_change(session, ChangeIn(route="support.reply", kind=ChangeKind.prompt,
                                        description="prompt v42", ts=NOW - timedelta(minutes=40)),
                      now=NOW)
    delivery = ConsoleDelivery()
    return CommandCore(db, delivery, incident_channel="C_INCIDENTS"), delivery


def texts(reply):
    out = [reply.text]
    for block in reply.blocks:
        if isinstance(block, Section):
            out += [block.title or "", block.text] + [f"{k}: {v}" for k, v in block.fields]
        elif isinstance(block, Table):
            out += [block.title or ""] + [" ".join(r) for r in block.rows]
    return "\n".join(out)


def test_start_posts_card_runbook_checklist_snapshot_changes_and_origin_link(core, db):
    core_, delivery = core
    outcome = core_.run("start support.reply cost tokens exploding 🔥", ctx())
    assert "Incident #1 started in <#C_INCIDENTS>" in outcome.reply.text
    posts, _ = delivery.drain()
    assert [(p.target, p.key) for p in posts] == [
        (Target.root, "incident:1:card"), (Target.thread, "incident:1:runbook"),
        (Target.thread, "incident:1:triage"),
        (Target.thread, "incident:1:checklist"), (Target.thread, "incident:1:snapshot:support.reply"),
        (Target.thread, "incident:1:panel:support.reply"), (Target.thread, "incident:1:changes"),
        (Target.origin, "incident:1:origin-link")]
    runbook = texts(posts[1].reply)
    for heading in ("Summary", "Triage", "Mitigation options", "Evidence", "Follow-ups"):
        assert f"\n{heading}\n" in f"\n{runbook}\n"
    assert "Symptom: tokens exploding 🔥" in runbook
    checklist = texts(posts[3].reply)
    assert "Triage: Cost" in checklist and "Triage: Quality" not in checklist
    snapshot = texts(posts[4].reply)
    assert "p95 tokens_out 300 2,400 +700%" in snapshot
    assert "prompt v42" in texts(posts[6].reply)
    with db.read() as session:
        incident = incidents.get_incident(session, 1)
    assert (incident.channel_id, incident.origin_channel_id) == ("C_INCIDENTS", "C_ONCALL")
    assert incident.commander == "U_ANA" and incident.incident_class == "cost"


def test_unknown_class_gets_all_four_checklists(core):
    core_, delivery = core
    core_.run("start something is off", ctx())
    checklist = texts(delivery.drain()[0][2].reply)
    for name in ("Quality", "Latency", "Cost", "Provider"):
        assert f"Triage: {name}" in checklist


def test_same_request_key_never_starts_twice(core, db):
    core_, delivery = core
    first = core_.run("start support.reply quality unsafe answers", ctx(key="trigger-1"))
    again = core_.run("start support.reply quality unsafe answers", ctx(key="trigger-1"))
    assert "already started" in again.reply.text and "#1" in first.reply.text
    posts, _ = delivery.drain()
    assert len([p for p in posts if p.target is Target.root]) == 1
    with db.read() as session:
        assert [i.number for i in incidents.list_open(session)] == [1]


def test_status_list_and_close_address_the_channel_incident_or_number(core, db):
    core_, delivery = core
    core_.run("start support.reply latency slow", ctx())
    core_.run("start search.summarize other", ctx(channel="C_OTHER"))
    delivery.drain()
    reply = core_.run("status rolling back 'v42'", ctx(minutes=5)).reply
    assert reply.text == "Status posted to incident #1."
    posts, cards = delivery.drain()
    assert posts[0].key.startswith("incident:1:status:") and cards == [1]
    assert "rolling back 'v42'" in texts(posts[0].reply)
    assert "#2" in core_.run("status #2 looking", ctx(channel="C_ELSEWHERE")).reply.text
    listing = texts(core_.run("list", ctx()).reply)
    assert "#1 open latency" in listing and "#2 open unknown" in listing
    closed = core_.run("close #1 clamp fixed it", ctx(minutes=42))
    assert closed.reply.text == "Incident #1 closed."
    posts, cards = delivery.drain()
    by_key = {p.key: p for p in posts}
    timeline = texts(by_key["incident:1:closed"].reply)
    assert "closed after 42m" in timeline and "clamp fixed it" in timeline
    assert "Time to mitigate" in texts(by_key["incident:1:postmortem"].reply)
    files = by_key["incident:1:postmortem-files"].attachments
    assert [a.kind for a in files] == ["postmortem_markdown", "postmortem_charts",
                                       "postmortem_canvas"]
    assert "status: rolling back 'v42'" in timeline
    assert "already closed" in core_.run("close #1", ctx()).reply.text


def test_user_errors_are_answers_not_exceptions(core):
    core_, _ = core
    assert "no open incident in this channel" in core_.run("status hello", ctx()).reply.text
    assert "there is no incident #9" in core_.run("close #9", ctx()).reply.text
    assert "Did you mean `support.reply`" in core_.run("metrics support.replyy", ctx()).reply.text
    assert "Usage: `/llm-incident metrics" in texts(core_.run("metrics", ctx()).reply)


def test_metrics_answers_baseline_vs_now_and_states_no_traffic(core, db):
    core_, _ = core
    reply = core_.run("metrics support.reply 30m", ctx())
    assert reply.reply.ephemeral is False
    assert "p95 tokens_out 8.0× baseline" in texts(reply.reply)
    with db.write() as session:
        ingest_events(session, [{"route": "quiet.route", "ts": "2026-11-20T00:00:00Z"}], now=NOW)
    assert "No traffic" in texts(core_.run("metrics quiet.route", ctx()).reply)


def test_start_form_and_submission(core, db):
    core_, delivery = core
    modal = core_.run("start", ctx()).modal
    assert modal.kind == "start"
    routes_field = next(f for f in modal.fields if f.name == "routes")
    assert "support.reply" in routes_field.options
    outcome = core_.submit("start", {"symptom": "PII in answers", "incident_class": "quality",
                                     "routes": ["support.reply"], "severity": "sev1",
                                     "envs": "prod, staging", "customer_tiers": ""}, "", ctx())
    assert "Incident #1 started" in outcome.reply.text
    with db.read() as session:
        incident = incidents.get_incident(session, 1)
    assert (incident.severity, incident.envs, incident.routes) == (
        "sev1", ["prod", "staging"], ["support.reply"])


def test_change_verb_records_the_change_for_triage_and_postmortem(core, db):
    core_, _ = core
    reply = core_.run("change support.reply deploy v2.3.1 rolled out",
                      ctx(minutes=1)).reply
    assert reply.text == ("Recorded a deploy change on `support.reply` at 14:01 UTC: "
                          "v2.3.1 rolled out")
    from llm_incident.changes import recent_changes

    with db.read() as session:
        changes = recent_changes(session, ["support.reply"], until=NOW + timedelta(minutes=2),
                                 lookback=timedelta(hours=1))
    assert [(c.kind, c.description, c.author) for c in changes][0] == (
        "deploy", "v2.3.1 rolled out", "U_ANA")


def test_mitigated_verb_marks_the_incident_once_and_says_so(core, db):
    core_, delivery = core
    core_.run("start support.reply cost tokens exploding", ctx())
    delivery.drain()
    reply = core_.run("mitigated #1 killed the route, no more bad answers", ctx(minutes=3)).reply
    assert reply.text == "Incident #1 marked mitigated."
    posts, cards = delivery.drain()
    assert [p.key for p in posts] == [posts[0].key] and posts[0].key.startswith(
        "incident:1:mitigated:")
    assert "marked incident #1 mitigated: killed the route" in posts[0].reply.text
    assert cards == [1]
    with db.read() as session:
        incident = incidents.get_incident(session, 1)
        assert (incident.status, incident.mitigated_at) == ("mitigated",
                                                            NOW + timedelta(minutes=3))
    again = core_.run("mitigated #1", ctx(minutes=4)).reply
    assert "incident #1 is mitigated, not open" in again.text + str(again.blocks)
