"""Alert evaluation and state on SQLite and PostgreSQL: thresholds, min calls, baselines,
cooldown, one notification per state change, resolved notices, where the alert is posted, and
starting an incident from it. Job functions are called with a fixed `now` (freezegun pins the
wall clock for the parts that read it)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time
from sqlmodel import select

from llm_incident.alerts.evaluate import CRITICAL, OK, WARNING, observe_all
from llm_incident.alerts.models import AlertNotification, AlertState
from llm_incident.alerts.rules import AlertRule
from llm_incident.commands.alerting import AlertConfig
from llm_incident.commands.core import CommandCore
from llm_incident.commands.context import Context
from llm_incident.commands.replies import Actions, Section
from llm_incident.events.ingest import ingest_events
from llm_incident.incidents import service as incidents
from llm_incident.incidents.models import TimelineEntry
from llm_incident.scheduler.alert_job import run_alerts
from llm_incident.scheduler.context import JobContext
from llm_incident.slack.models import OutboxMessage
from llm_incident.slack.outbox import SlackDelivery

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
_ids = itertools.count()

ERRORS = AlertRule(id="errors", metric="error_rate", compare="absolute", warning=0.05,
                   critical=0.2, min_calls=20, window="15m", cooldown="30m")
FLAGGED = AlertRule(id="flagged", metric="flagged_rate", warning=2, critical=4, floor=0.02,
                    min_calls=20, window="15m", baseline="day")


def store(db, route: str, n: int, *, at: datetime, errors: int = 0, flagged: int = 0,
          spread: timedelta = timedelta(minutes=10), **fields) -> None:
    """n events of `route` spread evenly over `spread` before `at`, `errors` of them errors and
    `flagged` flagged, both spread evenly among them."""
    error_at = {k * n // errors for k in range(errors)} if errors else set()
    rest = [i for i in range(n) if i not in error_at]
    flagged_at = {rest[k * len(rest) // flagged] for k in range(flagged)} if flagged else set()
    events = []
    for i in range(n):
        status = "error" if i in error_at else "flagged" if i in flagged_at else "ok"
        event = {"event_id": f"e{next(_ids)}", "route": route, "status": status,
                 "ts": (at - spread * (i + 1) / (n + 1)).isoformat(), "tokens_out": 100,
                 "duration_ms": 500.0, **fields}
        if status == "error":
            event["error_code"] = "503"
        events.append(event)
    with db.write() as session:
        result = ingest_events(session, events, now=at)
    assert not result.rejected


def jc(db, *rules, channel="C_ALERTS"):
    return JobContext(db=db, delivery=SlackDelivery(), rules=rules, alert_channel=channel)


def outbox(db, prefix="alert:") -> list[OutboxMessage]:
    with db.read() as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.key.startswith(prefix))
                            .order_by(OutboxMessage.id))
        return list(rows)


def levels(run) -> dict[tuple[str, str], str | None]:
    return {(o.rule.id, o.route): o.level for o in run.observations}


def test_absolute_thresholds_and_min_calls(db):
    store(db, "a.warn", 400, at=NOW, errors=40)      # 10 % → warning
    store(db, "a.crit", 400, at=NOW, errors=100)     # 25 % → critical
    store(db, "a.fine", 400, at=NOW, errors=10)      # 2.5 % → ok
    store(db, "a.few", 10, at=NOW, errors=10)      # 100 % of 10 calls: too few to judge
    run = run_alerts(jc(db, ERRORS), NOW, dry_run=True)
    assert levels(run) == {("errors", "a.warn"): WARNING, ("errors", "a.crit"): CRITICAL,
                           ("errors", "a.fine"): OK, ("errors", "a.few"): None}
    few = next(o for o in run.observations if o.route == "a.few")  # the rates: 95 % lower bound
    assert few.reason == "10 calls in 15m (min 20)"
    assert outbox(db) == []  # a dry run stores nothing


def test_absolute_rates_are_judged_on_their_lower_bound(db):
    store(db, "few", 60, at=NOW, errors=4)         # 6.7 % of 60 calls: could be chance → ok
    store(db, "many", 1000, at=NOW, errors=70)     # 7 % of 1,000 calls → warning
    store(db, "worse", 60, at=NOW, errors=30)      # 50 % of 60 calls: surely ≥ 20 % → critical
    run = run_alerts(jc(db, ERRORS), NOW, dry_run=True)
    assert levels(run) == {("errors", "few"): OK, ("errors", "many"): WARNING,
                           ("errors", "worse"): CRITICAL}


def recent(db, route: str, *, before: int, now: int, calls: int = 300, history: int = 1800,
           day: int | None = None) -> None:
    """A route whose flagged count goes from `before` per `history` calls (the 110 minutes up to
    10 minutes ago) to `now` per `calls` (the last 10 minutes); with `day`, the same window a day
    ago has `day` flagged per 100 calls."""
    if day is not None:
        store(db, route, 100, at=NOW - timedelta(days=1), flagged=day)
    store(db, route, history, at=NOW - 10 * MIN, spread=110 * MIN, flagged=before)
    store(db, route, calls, at=NOW, flagged=now)


def test_ratio_rules_need_a_confirmed_shift_and_respect_the_floor(db):
    recent(db, "q.bad", before=36, now=36, day=2)       # 2 % → 12 % = 6× → critical
    recent(db, "q.meh", before=72, now=30, day=4)       # 4 % → 10 % = 2.5× → warning
    recent(db, "q.tiny", before=0, now=3, day=0)        # 0 → 1 %: infinite ratio, under floor
    recent(db, "q.new", before=0, now=15, day=0)        # 0 → 5 %: infinite ratio → critical
    recent(db, "q.calm", before=36, now=7, day=2)       # 2 % → 2.3 %: no shift → ok
    store(db, "q.young", 100, at=NOW, flagged=50)       # 10 minutes of history: learning
    run = run_alerts(jc(db, FLAGGED), NOW, dry_run=True)
    assert levels(run) == {
        ("flagged", "q.bad"): CRITICAL, ("flagged", "q.meh"): WARNING,
        ("flagged", "q.tiny"): OK, ("flagged", "q.new"): CRITICAL, ("flagged", "q.calm"): OK,
        ("flagged", "q.young"): None}
    seen = {o.route: o for o in run.observations}
    bad = seen["q.bad"]
    assert (bad.value, bad.baseline) == (pytest.approx(0.12, rel=0.05), pytest.approx(0.02))
    assert bad.ratio == pytest.approx(6, rel=0.05)
    assert NOW - 11 * MIN <= bad.onset <= NOW - 10 * MIN   # the minute the shift began
    assert bad.basis == "vs the same 15 min a day ago"
    assert seen["q.calm"].reason.startswith("not confirmed") or seen["q.calm"].reason == ""
    young = seen["q.young"]
    assert (young.status, young.shown_level) == ("learning", "learning")
    assert young.reason == ("learning: no day-ago data yet; 0 min of history before the window "
                            "(needs 1h)")


def test_filter_narrows_the_events_a_rule_sees(db):
    store(db, "f.route", 400, at=NOW, errors=200, env="staging")
    store(db, "f.route", 400, at=NOW, errors=0, env="prod")
    prod = ERRORS.model_copy(update={"id": "prod-errors", "filter": 'env = "prod"'})
    run = run_alerts(jc(db, ERRORS, prod), NOW, dry_run=True)
    assert levels(run) == {("errors", "f.route"): CRITICAL, ("prod-errors", "f.route"): OK}


def test_routes_without_traffic_in_the_window_are_not_evaluated(db):
    store(db, "old.route", 40, at=NOW - timedelta(hours=2), errors=40)
    store(db, "live.route", 40, at=NOW, errors=0)
    run = run_alerts(jc(db, ERRORS), NOW, dry_run=True)
    assert set(levels(run)) == {("errors", "live.route")}


def test_one_notification_per_state_change_then_resolved(db):
    context = jc(db, ERRORS)
    store(db, "s.route", 400, at=NOW, errors=100)                  # 25 % critical
    first = run_alerts(context, NOW)
    assert [(n.previous_level, n.level) for n in first.notifications] == [(OK, CRITICAL)]
    for minute in (1, 2, 3):                                     # same state: nothing new
        assert run_alerts(context, NOW + minute * MIN).notifications == []
    assert len(outbox(db)) == 1
    # 40 minutes later (past the cooldown) the window holds only healthy traffic
    later = NOW + 40 * MIN
    store(db, "s.route", 400, at=later, errors=0)
    resolved = run_alerts(context, later)
    assert [(n.previous_level, n.level) for n in resolved.notifications] == [(CRITICAL, OK)]
    rows = outbox(db)
    assert len(rows) == 2 and rows[0].channel == "C_ALERTS" and rows[0].kind == "channel"
    assert "CRITICAL error rate on `s.route`: 25.0%" in rows[0].payload["message"]["text"]
    assert "RESOLVED error rate on `s.route`: back to 0.0%" in rows[1].payload["message"]["text"]
    with db.read() as session:
        state = session.get(AlertState, ("errors", "s.route"))
        assert (state.level, state.version) == (OK, 2)


def test_cooldown_holds_back_flapping_but_not_escalation(db):
    context = jc(db, ERRORS)
    store(db, "c.route", 400, at=NOW, errors=30, spread=5 * MIN)      # 7.5 % warning
    assert [n.level for n in run_alerts(context, NOW).notifications] == [WARNING]
    t1 = NOW + 5 * MIN                                               # escalation: at once
    store(db, "c.route", 400, at=t1, errors=400, spread=4 * MIN)
    assert [n.level for n in run_alerts(context, t1).notifications] == [CRITICAL]
    t2 = NOW + 25 * MIN                                              # healthy, in cooldown
    store(db, "c.route", 200, at=t2, errors=0, spread=14 * MIN)
    held = run_alerts(context, t2)
    assert held.notifications == [] and held.held[0].until == t1 + 30 * MIN
    t3 = t1 + 30 * MIN                                               # cooldown over
    store(db, "c.route", 200, at=t3, errors=0, spread=14 * MIN)
    assert [n.level for n in run_alerts(context, t3).notifications] == [OK]


def test_two_evaluators_racing_store_and_post_each_change_once(db):
    store(db, "r.route", 400, at=NOW, errors=100)
    context = jc(db, ERRORS)
    with db.read() as session:
        observations = observe_all(session, context.rules, NOW)
    from llm_incident.alerts.service import record

    with db.write() as session:
        first, _ = record(session, observations, NOW)
    with db.write() as session:  # a second evaluator that observed the same before the first wrote
        second, _ = record(session, observations, NOW)
    assert len(first) == 1 and second == []
    with db.read() as session:
        assert len(list(session.exec(select(AlertNotification)))) == 1


def test_alert_goes_to_the_open_incident_thread_and_timeline(db):
    store(db, "i.route", 400, at=NOW, errors=100)
    core = CommandCore(db, SlackDelivery(), incident_channel="C_INC")
    core.run("start i.route provider 503s", Context(user="U1", channel="C_INC", now=NOW - MIN))
    run_alerts(jc(db, ERRORS), NOW)
    (row,) = outbox(db)
    assert (row.kind, row.incident_number) == ("thread", 1)
    with db.read() as session:
        kinds = [e.kind for e in session.exec(select(TimelineEntry))]
        note = session.exec(select(AlertNotification)).one()
    assert "alert" in kinds and note.incident_number == 1


def test_alert_message_has_numbers_onset_trend_and_a_start_button(db):
    recent(db, "m.route", before=36, now=27, day=2)     # 2 % → 9 %
    run = run_alerts(jc(db, FLAGGED), NOW)
    (note,) = run.notifications
    (row,) = outbox(db)
    blocks = row.payload["message"]["blocks"]
    flat = str(blocks)
    began = note.onset.replace(tzinfo=timezone.utc)
    assert NOW - 11 * MIN <= began <= NOW - 10 * MIN
    text = row.payload["message"]["text"]
    assert text == (f"🔴 CRITICAL flagged rate on `m.route`: {note.value:.1%} vs 2.0% "
                    f"({note.value / 0.02:.1f}×) since {began:%H:%M}")
    assert "Trend" in flat and "vs the same 15 min a day ago" in flat
    assert f"{began:%Y-%m-%d %H:%M} UTC (" in flat and "before this alert" in flat
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons[0]["text"]["text"] == "Start incident"
    assert buttons[0]["value"] == f"alerts start {note.id}"


def test_start_incident_from_an_alert_is_prefilled_and_idempotent(db):
    store(db, "p.route", 400, at=NOW, errors=100)
    (note,) = run_alerts(jc(db, ERRORS), NOW).notifications
    config = AlertConfig(rules=(ERRORS,), channel="C_ALERTS")
    core = CommandCore(db, SlackDelivery(), incident_channel="C_INC", alerts=config)
    ctx = Context(user="U_ONCALL", channel="C_ALERTS", now=NOW + MIN, request_key="click-1")
    out = core.run(f"alerts start {note.id}", ctx)
    assert "Incident #1 started" in out.reply.text
    again = core.run(f"alerts start {note.id}", Context(user="U_OTHER", channel="C_ALERTS",
                                                        now=NOW + 2 * MIN, request_key="click-2"))
    assert "#1" in again.reply.text and "already" in again.reply.text
    with db.read() as session:
        incident = incidents.get_incident(session, 1)
        assert (incident.routes, incident.incident_class, incident.severity) == (
            ["p.route"], "provider", "sev1")
        assert incident.symptom.startswith("critical: error rate on `p.route`: 25.0%")
        trigger = [e for e in incidents.timeline(session, incident) if e.kind == "trigger"]
        assert trigger[0].after["metric"] == "error_rate"
        assert len(list(session.exec(select(incidents.Incident)))) == 1
    # the alert (not sent yet here) now reads who started which incident, without the button
    (alert,) = outbox(db)
    message = alert.payload["message"]
    assert "Incident #1 started from this alert by <@U_ONCALL>" in str(message["blocks"])
    assert "Start incident" not in str(message["blocks"])


def test_alerts_command_lists_rules_and_what_fires(db):
    store(db, "l.route", 400, at=NOW, errors=100)
    run_alerts(jc(db, ERRORS), NOW)
    core = CommandCore(db, SlackDelivery(), alerts=AlertConfig(rules=(ERRORS,), channel="C_ALERTS",
                                                              interval_seconds=60))
    reply = core.run("alerts", Context(user="U1", channel="C1", now=NOW)).reply
    body = "\n".join(b.text for b in reply.blocks if isinstance(b, Section))
    assert "every 60 s" in body and "`errors`: error rate over 15m" in body
    assert "🔴 `l.route` errors: 25.0%" in body
    bad = core.run("alerts start nine", Context(user="U1", channel="C1", now=NOW)).reply
    assert "alerts start <alert id>" in bad.text or any(
        "alerts start <alert id>" in str(b) for b in bad.blocks)
    missing = core.run("alerts start 999", Context(user="U1", channel="C1", now=NOW)).reply
    assert "there is no alert 999" in missing.text + str(missing.blocks)
    assert not any(isinstance(b, Actions) for b in missing.blocks)


def test_freezegun_pins_the_clock_the_job_reads(db):
    store(db, "z.route", 400, at=NOW, errors=100)
    with freeze_time(NOW):
        run = run_alerts(jc(db, ERRORS), datetime.now(timezone.utc))
    assert [n.ts for n in run.notifications] == [NOW]


def test_after_a_resolution_a_new_critical_pages_at_once_but_a_warning_waits(db):
    context = jc(db, ERRORS)
    store(db, "b.route", 400, at=NOW, errors=400, spread=4 * MIN)                # critical
    assert [n.level for n in run_alerts(context, NOW).notifications] == [CRITICAL]
    t1 = NOW + 31 * MIN                                                        # resolved
    store(db, "b.route", 1000, at=t1, errors=0, spread=14 * MIN)
    assert [n.level for n in run_alerts(context, t1).notifications] == [OK]
    t2 = t1 + 5 * MIN                                                          # warning: waits
    # 12 % since the step, 6 % over the window: a warning (the earlier critical's end is no
    # onset: the detector's search starts again after it)
    store(db, "b.route", 1000, at=t2, errors=120, spread=4 * MIN)
    held = run_alerts(context, t2)
    assert held.notifications == [] and held.held[0].observation.level == WARNING
    t3 = t2 + 2 * MIN                                                          # critical: at once
    store(db, "b.route", 1000, at=t3, errors=1000, spread=MIN)
    assert [(n.previous_level, n.level) for n in run_alerts(context, t3).notifications] == [
        (OK, CRITICAL)]


def test_a_steady_state_writes_nothing(db):
    store(db, "q.route", 400, at=NOW, errors=100)
    context = jc(db, ERRORS)
    run_alerts(context, NOW)
    with db.read() as session:
        before = session.get(AlertState, ("errors", "q.route")).version
    again = run_alerts(context, NOW + MIN)
    assert (again.notifications, again.held) == ([], [])
    with db.read() as session:
        assert session.get(AlertState, ("errors", "q.route")).version == before
