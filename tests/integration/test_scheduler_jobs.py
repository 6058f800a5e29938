"""Reminders, mitigation expiry and "did the mitigation work?" on SQLite and PostgreSQL: the job
functions are called with a fixed `now`; a "restart" is a fresh JobContext on the same store."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta, timezone

from sqlmodel import select

from llm_incident.alerts.rules import AlertRule
from llm_incident.commands.core import CommandCore
from llm_incident.commands.context import Context
from llm_incident.controls import service as controls
from llm_incident.events.ingest import ingest_events
from llm_incident.incidents import service as incidents
from llm_incident.scheduler.context import JobContext
from llm_incident.scheduler.expiry import revert_expired_controls
from llm_incident.scheduler.mitigation_check import check_mitigations
from llm_incident.scheduler.reminders import send_follow_ups, send_status_nudges
from llm_incident.slack.models import OutboxMessage
from llm_incident.slack.outbox import SlackDelivery

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
DAY = timedelta(days=1)
_ids = itertools.count()


def context(db, **kw) -> JobContext:
    """A fresh context, as a restarted process builds it."""
    return JobContext(db=db, delivery=SlackDelivery(), alert_channel="C_ALERTS", **kw)


def core(db) -> CommandCore:
    return CommandCore(db, SlackDelivery(), incident_channel="C_INC")


def run(db, text: str, at: datetime, user: str = "U_CMD"):
    return core(db).run(text, Context(user=user, channel="C_INC", now=at))


def rows(db, prefix: str) -> list[OutboxMessage]:
    with db.read() as session:
        stmt = (select(OutboxMessage).where(OutboxMessage.key.startswith(prefix))
                .order_by(OutboxMessage.id))
        return list(session.exec(stmt))


def text(row: OutboxMessage) -> str:
    return row.payload["message"]["text"]


def store(db, route: str, tokens: list[int], start: datetime, end: datetime, **fields) -> None:
    step = (end - start) / (len(tokens) + 1)
    events = [{"event_id": f"e{next(_ids)}", "route": route, "tokens_out": t,
               "ts": (start + step * (i + 1)).isoformat(), "duration_ms": 400.0, **fields}
              for i, t in enumerate(tokens)]
    with db.write() as session:
        assert not ingest_events(session, events, now=end).rejected


# -- status nudges ---------------------------------------------------------------------------

def test_status_nudge_every_interval_by_severity_once_each_across_restarts(db):
    run(db, "start checkout.chat latency slow answers", NOW)            # sev2: every 30 min
    assert send_status_nudges(context(db), NOW + 29 * MIN) == []
    assert send_status_nudges(context(db), NOW + 30 * MIN) == [1]
    assert send_status_nudges(context(db), NOW + 31 * MIN) == []        # restarted: not again
    assert send_status_nudges(context(db), NOW + 60 * MIN) == [1]       # next interval
    (first, second) = rows(db, "status-nudge:")
    assert "no status update for 30m" in text(first) and "sev2" in text(first)
    assert "no status update for 1h 0m" in text(second)
    assert (first.kind, first.incident_number) == ("thread", 1)


def test_a_status_update_resets_the_nudge_clock(db):
    run(db, "start checkout.chat latency slow answers", NOW)
    run(db, "status #1 rolled back the prompt", NOW + 20 * MIN)
    assert send_status_nudges(context(db), NOW + 45 * MIN) == []
    assert send_status_nudges(context(db), NOW + 50 * MIN) == [1]


def test_a_long_outage_sends_the_due_nudge_once_not_a_burst(db):
    run(db, "start checkout.chat latency slow answers", NOW)
    assert send_status_nudges(context(db), NOW + 200 * MIN) == [1]
    assert send_status_nudges(context(db), NOW + 201 * MIN) == []
    assert len(rows(db, "status-nudge:")) == 1


def test_severity_intervals_are_configurable_and_closed_incidents_are_left_alone(db):
    run(db, "start checkout.chat latency slow answers", NOW)
    fast = context(db, reminder_minutes={"sev2": 5})
    assert send_status_nudges(fast, NOW + 5 * MIN) == [1]
    run(db, "close #1 fixed", NOW + 6 * MIN)
    assert send_status_nudges(fast, NOW + 60 * MIN) == []
    off = context(db, reminder_minutes={"sev2": 0})
    run(db, "start other.route quality bad", NOW)
    assert send_status_nudges(off, NOW + 90 * MIN) == []


# -- follow-ups ------------------------------------------------------------------------------

def test_follow_up_dm_to_the_commander_days_after_close_once(db):
    run(db, "start checkout.chat cost tokens", NOW, user="U_LEAD")
    run(db, "close #1 clamped", NOW + 30 * MIN)
    closed = NOW + 30 * MIN
    assert send_follow_ups(context(db), closed + 7 * DAY - MIN) == []
    assert send_follow_ups(context(db), closed + 7 * DAY) == [1]
    assert send_follow_ups(context(db), closed + 7 * DAY + 5 * MIN) == []
    (row,) = rows(db, "follow-up:")
    assert (row.kind, row.channel) == ("channel", "U_LEAD")
    assert "closed 7 days ago" in text(row)
    assert send_follow_ups(context(db, followup_days=3), closed + 3 * DAY) == []  # already sent


# -- mitigation expiry -----------------------------------------------------------------------

def test_expiry_reverts_the_control_posts_it_and_is_done_once(db):
    run(db, "start support.reply cost tokens exploding", NOW)
    run(db, "clamp support.reply 512 for 30m", NOW + MIN)
    assert revert_expired_controls(context(db), NOW + 30 * MIN) == []
    reverted = revert_expired_controls(context(db), NOW + 31 * MIN)
    assert [(r.route, r.before, r.after) for r in reverted] == [
        ("support.reply", {"max_tokens": 512}, {"max_tokens": None})]
    assert revert_expired_controls(context(db), NOW + 40 * MIN) == []    # restart: nothing left
    with db.read() as session:
        assert controls.get_controls(session, "support.reply").max_tokens is None
        incident = incidents.get_incident(session, 1)
        entries = [e for e in incidents.timeline(session, incident) if e.kind == "expiry"]
    assert len(entries) == 1 and "max_tokens 512 → default" in entries[0].text
    (post,) = rows(db, "expiry:")
    assert post.incident_number == 1 and "ran out and was put back" in text(post)
    panel = rows(db, "incident:1:panel:support.reply")
    assert len(panel) == 1  # the route's panel replaced in place, not posted again


def test_expiry_outside_an_incident_goes_to_the_alert_channel(db):
    run(db, "kill legal.redline for 1h", NOW)
    revert_expired_controls(context(db), NOW + 61 * MIN)
    (post,) = rows(db, "expiry:")
    assert (post.kind, post.channel) == ("channel", "C_ALERTS")
    assert "enabled off → on" in text(post)


# -- did the mitigation work? ----------------------------------------------------------------

def nearest_rank_p95(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def seed_token_incident(db):
    """Baseline 24 h earlier ~450 tokens, the incident ~2,400, after the clamp ~500."""
    clamp_at = NOW + 20 * MIN
    check_at = clamp_at + 5 * MIN
    base = [400 + (i * 7) % 60 for i in range(60)]
    during = [2300 + (i * 13) % 200 for i in range(80)]
    after = [480 + (i * 11) % 40 for i in range(40)]
    store(db, "support.reply", base, clamp_at - DAY, check_at - DAY)
    store(db, "support.reply", during, NOW, clamp_at)
    store(db, "support.reply", after, clamp_at, check_at)
    return clamp_at, check_at, base, during, after


def test_mitigation_check_posts_the_three_windows_and_marks_mitigated(db):
    clamp_at, check_at, base, during, after = seed_token_incident(db)
    run(db, "start support.reply cost tokens exploding", NOW)
    run(db, "clamp support.reply 512", clamp_at)
    assert check_mitigations(context(db), check_at - MIN) == []          # not due yet
    (change_id,) = check_mitigations(context(db), check_at)
    assert check_mitigations(context(db), check_at + MIN) == []          # once
    (post,) = rows(db, "mitigation-check:")
    body = str(post.payload["message"])
    expected = (f"p95 tokens_out {nearest_rank_p95(during):,} → {nearest_rank_p95(after):,} "
                f"since the clamp at {clamp_at:%H:%M}; baseline {nearest_rank_p95(base):,}")
    assert expected in body
    assert "Recovered" in text(post) and "now *mitigated*" in text(post)
    with db.read() as session:
        incident = incidents.get_incident(session, 1)
        assert (incident.status, incident.mitigated_at) == ("mitigated", check_at)


def test_no_mitigated_mark_while_the_triggering_stat_is_still_high(db):
    clamp_at, check_at, base, _during, _after = seed_token_incident(db)
    store(db, "support.reply", [2500] * 60, clamp_at, check_at)  # the clamp did not help
    run(db, "start support.reply cost tokens exploding", NOW)
    run(db, "clamp support.reply 4000", clamp_at)
    check_mitigations(context(db), check_at)
    (post,) = rows(db, "mitigation-check:")
    assert "Not recovered" in text(post) and "p95 tokens_out (critical)" in text(post)
    with db.read() as session:
        assert incidents.get_incident(session, 1).status == "open"


def test_a_kill_leaves_nothing_to_measure_and_does_not_mark_mitigated(db):
    clamp_at, check_at, *_ = seed_token_incident(db)
    run(db, "start billing.route cost tokens", NOW)
    run(db, "kill billing.route", clamp_at)
    check_mitigations(context(db), check_at)
    (post,) = rows(db, "mitigation-check:")
    assert "Did the kill switch on `billing.route` work?" in text(post)
    assert "Can't tell yet: no calls since the change" in text(post)
    assert "`/llm-incident mitigated #1`" in text(post)
    with db.read() as session:
        assert incidents.get_incident(session, 1).status == "open"


def test_the_alert_an_incident_started_from_decides_what_must_recover(db):
    clamp_at, check_at, *_ = seed_token_incident(db)
    # flagged rate is the trigger here, and it stays high after the clamp
    store(db, "support.reply", [500] * 30, clamp_at, check_at, status="flagged")
    run(db, "start support.reply cost tokens", NOW)
    with db.write() as session:
        incident = incidents.get_incident(session, 1)
        incidents.add_timeline(session, incident, actor="U", kind="trigger", now=NOW, text="",
                               after={"metric": "flagged_rate", "route": "support.reply",
                                      "alert": 1, "rule": "flagged-rate", "level": "critical"})
    run(db, "clamp support.reply 512", clamp_at)
    check_mitigations(context(db, rules=(AlertRule(
        id="flagged-rate", metric="flagged_rate", warning=2, critical=4, floor=0.02),)), check_at)
    (post,) = rows(db, "mitigation-check:")
    assert "Not recovered" in text(post) and "flagged rate" in text(post)


def test_changes_outside_incidents_or_in_closed_ones_are_not_checked(db):
    run(db, "clamp lonely.route 100", NOW)
    run(db, "start support.reply cost tokens", NOW)
    run(db, "clamp support.reply 512", NOW + MIN)
    run(db, "close #1 done", NOW + 2 * MIN)
    assert check_mitigations(context(db), NOW + 10 * MIN) == []
    assert rows(db, "mitigation-check:") == []


def test_a_tick_with_nothing_due_opens_no_write_transaction(db, monkeypatch):
    run(db, "start support.reply cost tokens", NOW)
    run(db, "clamp support.reply 512 for 2h", NOW + MIN)
    assert send_status_nudges(context(db), NOW + 30 * MIN) == [1]
    assert len(check_mitigations(context(db), NOW + 10 * MIN)) == 1

    def no_write():
        raise AssertionError("a job opened a write transaction with nothing due")

    monkeypatch.setattr(db, "write", no_write)
    assert send_status_nudges(context(db), NOW + 31 * MIN) == []
    assert check_mitigations(context(db), NOW + 31 * MIN) == []
    assert revert_expired_controls(context(db), NOW + 31 * MIN) == []
    assert send_follow_ups(context(db), NOW + 31 * MIN) == []
