"""The postmortem defects of issue #17, each on both backends: time to mitigate from the onset to the
first change that reduced impact; follow-ups name the attributed prompt, not the rollback; frozen
at close (through the close command, reopen and reclose); one time for one expiry; extra spend,
prompt mix, redacted excerpts; one trailing newline."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from llm_incident.changes import ChangeIn, ChangeKind, record_change
from llm_incident.commands.context import Context
from llm_incident.commands.core import CommandCore
from llm_incident.commands.triage_posts import record_onset, route_triages
from llm_incident.console.shell import ConsoleDelivery
from llm_incident.controls.service import change_controls, revert_expired
from llm_incident.events.ingest import ingest_events
from llm_incident.events.models import Event
from llm_incident.incidents.postmortem import compile_postmortem, render_markdown
from llm_incident.incidents.service import StartRequest, get_incident, start_incident
from llm_incident.incidents.models import IncidentClass
from tests import postmortem_scenario as scenario

ONSET = datetime(2026, 11, 26, 20, 30, tzinfo=timezone.utc)
DECLARED = ONSET + timedelta(minutes=5)
ROUTE = "support.reply"


def traffic(until: datetime) -> list[dict]:
    """3 h of prompt v41 (300 tokens out), then v42 from the onset (2,500 tokens out)."""
    out, ts, i = [], ONSET - timedelta(hours=3), 0
    while ts < until:
        bad = ts >= ONSET
        out.append({"event_id": f"e{i:05d}", "route": ROUTE, "ts": ts.isoformat(),
                    "model": "gpt-4o-mini", "provider": "openai", "tokens_in": 900,
                    "tokens_out": (2500 if bad else 300) + (i * 7) % 40,
                    "duration_ms": 900.0 + (i * 13) % 100, "prompt_id": "support.main",
                    "prompt_version": "42" if bad else "41"})
        ts += timedelta(seconds=20)
        i += 1
    return out


def seed_triaged(db, *, until: datetime) -> None:
    """The bad prompt v42 at the onset, its rollback to v41 recorded 30 s after, an incident
    declared 5 min after the onset whose triage (the real one) records the onset."""
    with db.write() as session:
        ingest_events(session, traffic(until), now=until)
        for ts, ref, text in ((ONSET, "v42", "support prompt v42"),
                              (ONSET + timedelta(seconds=30), "v41", "roll back to prompt v41")):
            record_change(session, ChangeIn(route=ROUTE, kind=ChangeKind.prompt, description=text,
                                            ref=ref, author="deploy-bot", ts=ts), now=ts)
        incident, _ = start_incident(session, StartRequest(
            commander="U1", symptom="tokens", routes=(ROUTE,), incident_class=IncidentClass.cost),
            now=DECLARED)
        triages = route_triages(session, [ROUTE], incident_class="cost", since=None, now=DECLARED)
        record_onset(session, incident, triages, since=None, actor="U1", now=DECLARED)
        assert incident.onset_at is not None and abs(incident.onset_at - ONSET) <= timedelta(
            minutes=2)


def test_follow_ups_name_the_attributed_prompt_not_the_rollback(db):
    seed_triaged(db, until=DECLARED + timedelta(minutes=20))
    with db.write() as session:
        change_controls(session, ROUTE, "prod", {"max_tokens": 800}, actor="U2", incident=1,
                        now=DECLARED + timedelta(minutes=1))
    with db.read() as session:
        pm = compile_postmortem(session, 1, now=DECLARED + timedelta(minutes=20))
    assert [c.ref for c in pm.changes_before] == ["v42", "v41"]  # the newest is the rollback
    assert pm.culprit is not None and pm.culprit.name == "prompt support.main v42"
    assert pm.culprit.ref == "v42"
    fix = [f for f in pm.follow_ups if f.startswith("Fix or roll back")]
    assert fix == ["Fix or roll back prompt support.main v42 on `support.reply` — the likely cause "
                   f"(prompt change v42 at {pm.culprit.ts:%H:%M} UTC)"]
    assert "Decide: keep the token clamp on `support.reply` (800 tokens) or fix prompt " \
           "support.main v42" in pm.follow_ups
    assert not any("v41" in f for f in pm.follow_ups)


def test_a_restore_is_no_mitigation_and_time_to_mitigate_counts_from_the_onset(db):
    seed_triaged(db, until=DECLARED + timedelta(minutes=20))
    with db.write() as session:
        incident = get_incident(session, 1)
        began = incident.onset_at
        # a clamp left from an earlier incident is restored first: that reduces nothing
        change_controls(session, ROUTE, "prod", {"max_tokens": 500, "retry_cap": 2}, actor="U7",
                        now=ONSET - timedelta(hours=1))
        change_controls(session, ROUTE, "prod", {"max_tokens": None, "retry_cap": None},
                        actor="U2", incident=1, now=DECLARED + timedelta(seconds=3))
        change_controls(session, ROUTE, "prod", {"max_tokens": 800}, actor="U2", incident=1,
                        now=DECLARED + timedelta(minutes=2))
    with db.read() as session:
        pm = compile_postmortem(session, 1, now=DECLARED + timedelta(minutes=20))
    assert pm.first_mitigation_at == DECLARED + timedelta(minutes=2)
    assert pm.time_to_mitigate == DECLARED + timedelta(minutes=2) - began
    assert pm.phase("during").end == DECLARED + timedelta(minutes=2)
    text = render_markdown(pm)
    assert "@U2 removed the token clamp and the retry cap on `support.reply`" in text
    assert "on, removed" not in text


def test_one_expiry_has_one_time(db):
    seed_triaged(db, until=DECLARED + timedelta(minutes=20))
    at = DECLARED + timedelta(seconds=30)
    with db.write() as session:
        change_controls(session, ROUTE, "prod", {"max_tokens": 800}, actor="U2", incident=1,
                        expires_at=at + timedelta(minutes=10), now=at)
    with db.write() as session:  # the scheduler comes by 35 s after the expiry
        assert revert_expired(session, at + timedelta(minutes=10, seconds=35))
    with db.read() as session:
        pm = compile_postmortem(session, 1, now=DECLARED + timedelta(minutes=20))
    text = render_markdown(pm)
    due = f"{at + timedelta(minutes=10):%H:%M}"
    late = f"{at + timedelta(minutes=10, seconds=35):%H:%M}"
    assert due != late
    assert f"{due} UTC — the token clamp on `support.reply` expired" in text
    assert f"(until 2026-11-26 {due} UTC)" in text
    assert f" {late}" not in text.split("## Timeline")[0]


def test_extra_spend_prompt_mix_redacted_excerpts_and_one_newline(db):
    scenario.seed(db, close=False)
    with db.write() as session:  # an excerpt stored before redaction existed
        session.execute(update(Event).where(Event.event_id == "during-003")
                        .values(output_excerpt="mail bob@example.org, key sk-abcdefghijklmnop1234"))
    now = scenario.START + timedelta(minutes=50)
    with db.read() as session:
        pm = compile_postmortem(session, 1, now=now)
    text = render_markdown(pm)
    assert text.endswith("\n") and not text.endswith("\n\n")
    row = next(line for line in text.splitlines() if line.startswith("| `during-003`"))
    assert "[email]" in row and "[secret]" in row and "bob@" not in row and "sk-abc" not in row
    # spend: what the incident cost minus the baseline's cost per second × its length
    start, base_start = scenario.START, scenario.START - (now - scenario.START)

    def cost(lo, hi):
        with db.read() as session:
            return sum(c for (c,) in session.execute(
                Event.__table__.select().with_only_columns(Event.cost_usd).where(
                    Event.route == scenario.ROUTE, Event.env == "prod", Event.ts >= lo,
                    Event.ts < hi, Event.priced.is_(True))))
    (spend,) = [s for s in pm.spend if s.route == scenario.ROUTE]
    assert spend.incident_usd == pytest.approx(cost(start, now))
    expected = cost(base_start, start) / (start - base_start).total_seconds() * (
        now - start).total_seconds()
    assert spend.extra_usd == pytest.approx(cost(start, now) - expected)
    assert "- **Extra spend:** $" in text and "over the baseline rate" in text
    mix = [(u.route, u.prompt_version, u.baseline_calls, u.incident_calls) for u in pm.prompt_mix
           if u.route == scenario.ROUTE]
    assert mix == [(scenario.ROUTE, "42", 0, 75), (scenario.ROUTE, "41", 50, 0)]
    assert "### Prompt versions in use" in text


# --- frozen at close, through the close command --------------------------------------------------


def ctx(minutes: float, user: str = "U1") -> Context:
    return Context(user=user, channel="C_ONCALL", now=DECLARED + timedelta(minutes=minutes))


def test_the_close_command_freezes_the_postmortem_until_a_reopen_and_the_last_close(db):
    seed_triaged(db, until=DECLARED + timedelta(minutes=90))
    delivery = ConsoleDelivery()
    core = CommandCore(db, delivery, incident_channel="C_INCIDENTS")
    with db.write() as session:
        change_controls(session, ROUTE, "prod", {"max_tokens": 800}, actor="U2", incident=1,
                        now=ctx(2).now)
    assert core.run("close #1 clamp held", ctx(10)).reply.text == "Incident #1 closed."
    posts, _ = delivery.drain()
    closed_head = next(p for p in posts if p.key == "incident:1:closed").reply.text
    assert closed_head.startswith("Incident #1 closed after 10m (")
    with db.read() as session:
        at_close = render_markdown(compile_postmortem(session, 1, now=ctx(11).now))
    # three minutes after the close someone clamps harder and kills the route
    with db.write() as session:
        change_controls(session, ROUTE, "prod", {"max_tokens": 200, "enabled": False},
                        actor="U5", incident=1, now=ctx(13).now)
    with db.read() as session:
        later = compile_postmortem(session, 1, now=ctx(60).now)
    text = render_markdown(later)
    body = text.split("\n\n## After close\n\n", 1)[0] + "\n"
    assert body == at_close and later.frozen
    assert "max_tokens clamped to 200" not in body and "killed" not in body
    assert "Mitigation at close:** `support.reply` max_tokens clamped to 800" in body
    assert "@U5 killed `support.reply`; also clamped max_tokens to 200" in text.split(
        "## After close")[1]
    # a reopen gives a live draft again; the next close freezes that one
    core.run("reopen #1 it is back", ctx(20))
    with db.read() as session:
        draft = compile_postmortem(session, 1, now=ctx(25).now)
    assert draft.draft and not draft.frozen
    core.run("close #1 killed for good", ctx(30))
    with db.write() as session:
        change_controls(session, ROUTE, "prod", {"enabled": True, "max_tokens": None},
                        actor="U5", incident=1, now=ctx(31).now)
    with db.read() as session:
        last = compile_postmortem(session, 1, now=ctx(90).now)
    assert last.frozen and last.closed_at == ctx(30).now
    assert last.summary == "killed for good"
    assert [a.description for a in last.still_active] == ["killed, max_tokens clamped to 200"]
