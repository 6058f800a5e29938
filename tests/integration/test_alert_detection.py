"""Alerts from the first hour (SQLite, PostgreSQL): the baseline chain and its wording, `learning`,
detector confirmation with the onset, pending warnings (no flapping), silent routes and stale
states resolved, the onset inherited by the incident started from the alert, and the console as
an alert sink."""

from __future__ import annotations

import io
import itertools
import random
from datetime import datetime, timedelta, timezone

from sqlmodel import select

from llm_incident.alerts.baselines import choose
from llm_incident.alerts.evaluate import CRITICAL, OK, WARNING, StatsCache
from llm_incident.alerts.models import AlertNotification, AlertState
from llm_incident.alerts.rules import DEFAULT_RULES, AlertRule
from llm_incident.commands.alerting import AlertConfig
from llm_incident.commands.context import Context
from llm_incident.commands.core import CommandCore
from llm_incident.commands.replies import Section
from llm_incident.console.alerts import ConsoleAlerts
from llm_incident.console.shell import Shell
from llm_incident.events.ingest import ingest_events
from llm_incident.incidents import service as incidents
from llm_incident.metrics.windows import window_ending
from llm_incident.scheduler.alert_job import run_alerts
from llm_incident.scheduler.context import JobContext
from llm_incident.slack.outbox import SlackDelivery

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
_ids = itertools.count()
TOKENS = AlertRule(id="tokens", metric="p95_tokens_out", warning=1.5, critical=3)
FLAGGED = AlertRule(id="flagged", metric="flagged_rate", warning=1.5, critical=3, floor=0.02)
ERRORS = AlertRule(id="errors", metric="error_rate", compare="absolute", warning=0.05,
                   critical=0.2)
SILENT = next(r for r in DEFAULT_RULES if r.id == "silent-route")


def traffic(db, route: str, start: datetime, end: datetime, *, per_min: int = 20,
            tokens: float = 300, flagged: float = 0.0, errors: float = 0.0, seed: int = 1) -> None:
    """`per_min` calls a minute over [start, end): tokens_out lognormal around `tokens`, the
    given shares flagged / errors (503)."""
    rng = random.Random(seed)
    events, t = [], start
    while t < end:
        for i in range(per_min):
            roll = rng.random()
            status = "error" if roll < errors else "flagged" if roll < errors + flagged else "ok"
            event = {"event_id": f"d{next(_ids)}", "route": route, "status": status,
                     "ts": (t + timedelta(seconds=60 * (i + rng.random()) / per_min)).isoformat(),
                     "tokens_out": max(1, int(tokens * rng.lognormvariate(0, 0.3))),
                     "duration_ms": 400.0}
            if status == "error":
                event["error_code"] = "503"
            events.append(event)
        t += MIN
    with db.write() as session:
        for i in range(0, len(events), 2000):
            assert not ingest_events(session, events[i:i + 2000], now=end).rejected


def jc(db, *rules, channel=None):
    return JobContext(db=db, delivery=SlackDelivery(), rules=rules, alert_channel=channel)


def seen(run, rule_id: str, route: str):
    return next(o for o in run.observations if (o.rule.id, o.route) == (rule_id, route))


def test_the_baseline_chain_and_how_it_is_worded(db):
    window = window_ending(NOW, TOKENS.window_span)
    traffic(db, "fresh", NOW - timedelta(hours=3), NOW)
    traffic(db, "daily", NOW - timedelta(days=1, minutes=20), NOW - timedelta(days=1))
    traffic(db, "daily", NOW - timedelta(minutes=30), NOW)
    traffic(db, "weekly", NOW - timedelta(days=7, minutes=20), NOW - timedelta(days=7))
    traffic(db, "weekly", NOW - timedelta(minutes=30), NOW)
    traffic(db, "young", NOW - timedelta(minutes=40), NOW)
    with db.read() as session:
        cache = StatsCache(session, NOW)
        first = {route: NOW - timedelta(days=8) for route in ("daily", "weekly")}
        first.update(fresh=NOW - timedelta(hours=3), young=NOW - timedelta(minutes=40))
        picks = {route: choose(cache, TOKENS, route, window, first_seen=first[route])
                 for route in first}
        anchored = choose(cache, TOKENS, "fresh", window, first_seen=first["fresh"],
                          anchor=NOW - 25 * MIN)
    assert (picks["fresh"].kind, picks["fresh"].note) == (
        "trailing", "vs the last 2 h 45 min; no day-ago data yet")
    assert picks["fresh"].window.end == window.start           # the window itself left out
    assert (picks["daily"].kind, picks["daily"].note) == (
        "day", "vs the same 15 min a day ago; no week-ago data yet")
    assert (picks["weekly"].kind, picks["weekly"].note) == ("week", "vs the same 15 min a week ago")
    assert picks["young"].kind is None and picks["young"].note == (
        "learning: no week-ago data yet; no day-ago data yet; 25 min of history before the "
        "window (needs 1h)")
    assert anchored.note == "vs the 2 h 35 min before 13:35; no day-ago data yet"
    assert anchored.window.end == NOW - 25 * MIN               # a regression is not its baseline


def test_fresh_install_explosion_alerts_at_once_with_its_onset(db):
    traffic(db, "svc", NOW - timedelta(hours=3), NOW - 20 * MIN)
    traffic(db, "svc", NOW - 20 * MIN, NOW, tokens=2400, seed=2)      # 8× since 13:40
    run = run_alerts(jc(db, TOKENS), NOW)
    (note,) = run.notifications
    assert (note.level, note.onset.replace(tzinfo=timezone.utc)) == (CRITICAL, NOW - 20 * MIN)
    assert note.basis == "vs the 2 h 40 min before 13:40; no day-ago data yet"
    assert note.value / note.baseline > 6


def test_learning_is_visible_in_check_and_in_the_alerts_command(db):
    traffic(db, "new.route", NOW - timedelta(minutes=30), NOW)
    run = run_alerts(jc(db, TOKENS), NOW, dry_run=True)
    obs = seen(run, "tokens", "new.route")
    assert (obs.level, obs.status, obs.shown_level) == (None, "learning", "learning")
    core = CommandCore(db, SlackDelivery(), alerts=AlertConfig(rules=(TOKENS,)))
    reply = core.run("alerts", Context(user="U1", channel="C1", now=NOW)).reply
    text = "\n".join(f"{b.title}\n{b.text}" for b in reply.blocks if isinstance(b, Section))
    assert "Learning (no baseline with enough history yet): 1" in text
    assert "`new.route` tokens: no week-ago data yet; no day-ago data yet; 15 min of history" in text
    assert "LLM_INCIDENT_ALERT_CHANNEL is unset, so not to a channel" in text


def test_a_warning_waits_for_a_second_evaluation_and_a_blip_never_alerts(db):
    for route in ("held", "blip"):
        traffic(db, route, NOW - timedelta(hours=2), NOW - 2 * MIN)
        traffic(db, route, NOW - 2 * MIN, NOW, tokens=600, seed=3)      # 2× for 2 minutes
    context = jc(db, TOKENS)
    first = run_alerts(context, NOW)
    assert first.notifications == []
    assert {o.route: o.shown_level for o in first.observations} == {
        "held": "pending warning", "blip": "pending warning"}
    traffic(db, "held", NOW, NOW + 10 * MIN, tokens=600, seed=4)        # it holds
    traffic(db, "blip", NOW, NOW + 10 * MIN, seed=5)                    # it was a blip
    second = run_alerts(context, NOW + 10 * MIN)
    assert [(n.route, n.level) for n in second.notifications] == [("held", WARNING)]
    assert seen(second, "tokens", "blip").pending is None
    with db.read() as session:
        blip = session.get(AlertState, ("tokens", "blip"))
        assert (blip.level, blip.pending, blip.version) == (OK, None, 0)


def test_critical_fires_at_once_and_no_shift_means_no_alert(db):
    traffic(db, "steep", NOW - timedelta(hours=2), NOW - 4 * MIN)
    traffic(db, "steep", NOW - 4 * MIN, NOW, tokens=1500, seed=6)       # 5×
    traffic(db, "always", NOW - timedelta(hours=2), NOW, flagged=0.10, seed=7)  # high, no shift
    traffic(db, "always", NOW - timedelta(days=1, minutes=20), NOW - timedelta(days=1),
            flagged=0.02, seed=8)                                        # a day ago: 2 %
    run = run_alerts(jc(db, TOKENS, FLAGGED), NOW)
    assert [(n.route, n.rule_id, n.level) for n in run.notifications] == [
        ("steep", "tokens", CRITICAL)]
    always = seen(run, "flagged", "always")
    assert always.level == OK and always.reason.startswith("not confirmed: no shift")


def test_a_silent_route_alerts_and_resolves_its_stale_states(db):
    traffic(db, "quiet", NOW - timedelta(hours=3), NOW - 60 * MIN, errors=0.0)
    traffic(db, "quiet", NOW - 60 * MIN, NOW - 20 * MIN, errors=0.5, seed=9)  # 50 % errors
    context = jc(db, ERRORS, SILENT)
    early = run_alerts(context, NOW - 20 * MIN)
    assert [(n.rule_id, n.level) for n in early.notifications] == [("errors", CRITICAL)]
    later = run_alerts(context, NOW)                      # no call since 13:39
    got = {n.rule_id: n for n in later.notifications}
    assert got["silent-route"].level == CRITICAL
    assert got["silent-route"].reason == "no traffic since 13:39"
    assert (got["errors"].level, got["errors"].reason) == (OK, "not judged: no traffic since 13:39")
    with db.read() as session:
        assert session.get(AlertState, ("errors", "quiet")).level == OK
    assert run_alerts(context, NOW + MIN).notifications == []


def test_the_incident_started_from_an_alert_inherits_its_onset(db):
    traffic(db, "svc", NOW - timedelta(hours=3), NOW - 20 * MIN)
    traffic(db, "svc", NOW - 20 * MIN, NOW, tokens=2400, seed=2)
    (note,) = run_alerts(jc(db, TOKENS, channel="C_AL"), NOW).notifications
    core = CommandCore(db, SlackDelivery(), incident_channel="C_INC",
                       alerts=AlertConfig(rules=(TOKENS,), channel="C_AL"))
    out = core.run(f"alerts start {note.id}", Context(user="U1", channel="C_AL", now=NOW + MIN))
    assert "Incident #1 started" in out.reply.text
    with db.read() as session:
        incident = incidents.get_incident(session, 1)
        onset = incident.onset_at.replace(tzinfo=timezone.utc)
        assert (onset, incident.onset_source) == (NOW - 20 * MIN, "alert")
        trigger = [e for e in incidents.timeline(session, incident) if e.kind == "trigger"]
        assert trigger[0].after["onset"] == (NOW - 20 * MIN).isoformat()


def test_the_console_shows_alerts_as_they_fire_with_their_start_button(db):
    traffic(db, "svc", NOW - timedelta(hours=3), NOW - 20 * MIN)
    traffic(db, "svc", NOW - 20 * MIN, NOW, tokens=2400, seed=2)
    out = io.StringIO()
    answers = iter(["", "1"])
    clock = [NOW]
    sink = ConsoleAlerts(JobContext(db=db, rules=(TOKENS, ERRORS)), interval_seconds=60)
    shell = Shell(db, user="ana", out=out, read=lambda _prompt: next(answers),
                  clock=lambda: clock[0], alerts=AlertConfig(rules=(TOKENS, ERRORS)),
                  alert_sink=sink)
    shell.show_alerts()                                    # evaluates: the explosion fires
    text = out.getvalue()
    assert "── alert · alerts ──" in text
    assert "CRITICAL p95 tokens_out on `svc`" in text and "since 13:40" in text
    assert "[1] Start incident" in text
    shell.show_alerts()                                    # nothing new: nothing shown again
    assert out.getvalue() == text
    shell.handle_line("1")                                 # the Start button
    assert "Incident #1 started" in out.getvalue()
    with db.read() as session:
        assert incidents.get_incident(session, 1).onset_source == "alert"
    # a second error alert fired by someone else (a server) shows at the next prompt
    traffic(db, "svc", NOW, NOW + 2 * MIN, tokens=2400, errors=0.5, seed=11)
    clock[0] = NOW + 2 * MIN
    run_alerts(JobContext(db=db, rules=(TOKENS, ERRORS)), clock[0])
    shell.show_alerts()
    tail = out.getvalue()[len(text):]
    assert "error rate on `svc`" in tail and "incident #1's thread" in tail
    # `alerts` in the console agrees with the evaluation
    shell.handle_line("alerts")
    assert "🔴 `svc` tokens" in out.getvalue()
    with db.read() as session:
        notes = list(session.exec(select(AlertNotification)))
    assert {n.rule_id for n in notes} == {"tokens", "errors"}


def test_a_new_jump_after_an_earlier_burst_ended_is_confirmed_with_its_own_onset(db):
    # the detector's largest change is the earlier burst's end (a step down): the job searches
    # again after it and finds the new step up
    traffic(db, "api", NOW - timedelta(hours=3), NOW - 100 * MIN)
    traffic(db, "api", NOW - 100 * MIN, NOW - 60 * MIN, errors=0.5, seed=2)
    traffic(db, "api", NOW - 60 * MIN, NOW - 4 * MIN, seed=3)
    traffic(db, "api", NOW - 4 * MIN, NOW, errors=0.3, seed=4)
    observation = seen(run_alerts(jc(db, ERRORS), NOW), "errors", "api")
    assert (observation.level, observation.onset) == (CRITICAL, NOW - 4 * MIN)


def test_a_quiet_route_is_still_searched_for_a_shift(db):
    # 3 calls/min: 45 calls in the 15 min window, under the rule's 50 to judge a window, but
    # the detector has its counts: 2 h before the onset, 24 calls after it
    traffic(db, "night", NOW - timedelta(hours=3), NOW - 8 * MIN, per_min=3)
    traffic(db, "night", NOW - 8 * MIN, NOW, per_min=3, tokens=2400, seed=2)
    observation = seen(run_alerts(jc(db, TOKENS), NOW), "tokens", "night")
    assert (observation.level, observation.onset) == (CRITICAL, NOW - 8 * MIN)


def test_a_stop_at_two_calls_a_minute_is_critical_after_seven_silent_minutes(db):
    # 2 calls/min expect 14 calls in 7 min: none is a one-in-a-million chance
    traffic(db, "slow", NOW - timedelta(hours=3), NOW - 10 * MIN, per_min=2)
    context = jc(db, SILENT)
    assert seen(run_alerts(context, NOW - 4 * MIN), "silent-route", "slow").level != CRITICAL
    observation = seen(run_alerts(context, NOW), "silent-route", "slow")
    assert observation.level == CRITICAL
    assert observation.reason.startswith("no traffic since 13:4")


def test_a_killed_route_is_silent_on_purpose_and_raises_no_silence_alert(db):
    from llm_incident.alerts.silence import KILLED_REASON
    from llm_incident.controls.service import change_controls

    traffic(db, "stopped", NOW - timedelta(hours=3), NOW - 20 * MIN)
    traffic(db, "killed", NOW - timedelta(hours=3), NOW - 20 * MIN, seed=4)
    with db.write() as session:
        change_controls(session, "killed", "prod", {"enabled": False}, actor="U1",
                        reason="kill", now=NOW - 20 * MIN)
    run = run_alerts(jc(db, SILENT), NOW)
    assert [(n.route, n.level) for n in run.notifications] == [("stopped", CRITICAL)]
    killed = seen(run, "silent-route", "killed")
    assert (killed.level, killed.reason) == (OK, KILLED_REASON)


def test_a_two_minute_tail_waits_for_a_second_look(db):
    # 20 calls/min at 3 % flagged, then two minutes at 20 %: the 15 min window holds the tail
    # (at warning), but it is no second look at it; the next evaluation decides
    for route in ("tail", "holds"):
        traffic(db, route, NOW - timedelta(hours=3), NOW - 2 * MIN, flagged=0.03, seed=21)
        traffic(db, route, NOW - 2 * MIN, NOW, flagged=0.2, seed=22)
    context = jc(db, FLAGGED)
    first = run_alerts(context, NOW)
    assert first.notifications == []
    assert {o.route: o.shown_level for o in first.observations} == {
        "tail": "pending warning", "holds": "pending warning"}
    traffic(db, "tail", NOW, NOW + 3 * MIN, flagged=0.03, seed=23)      # it was a tail
    traffic(db, "holds", NOW, NOW + 3 * MIN, flagged=0.2, seed=24)      # it holds
    second = run_alerts(context, NOW + 3 * MIN)
    assert [(n.route, n.level != OK) for n in second.notifications] == [("holds", True)]
    assert seen(second, "flagged", "tail").level == OK



def test_an_error_storm_on_a_route_that_had_few_errors_beats_its_trailing_rate(db):
    # 30 calls/min at 1 % errors, then 5 minutes at 12 %: the 15 min window dilutes the storm to
    # under 5 %, but the short window's 12 % against the route's own 1 % of the 3 h before is
    # no chance: a warning (which must hold) from the absolute rules' test without an onset
    from llm_incident.alerts.evaluate import BaselineMemo, Evaluation, SeriesCache
    from llm_incident.alerts.evaluate import _against_trailing
    from llm_incident.alerts.observation import SHORT

    before = (NOW - timedelta(hours=3, minutes=15), NOW - 5 * MIN)
    for route, per_min, rate, now_rate, seed in (
            ("storm", 30, 0.01, 0.12, 31),
            ("chronic", 30, 0.045, 0.07, 33),  # already near the level: a few more are no storm
            ("thin", 4, 0.0, 0.08, 35),        # no error in a thin 3 h: 1 or 2 in 20 are no storm
            ("huge", 30, 0.01, 0.9, 37)):      # 9 calls in 10 failing: critical at once
        traffic(db, route, *before, per_min=per_min, errors=rate, seed=seed)
        traffic(db, route, NOW - 5 * MIN, NOW, per_min=per_min, errors=now_rate, seed=seed + 1)
    window = window_ending(NOW, ERRORS.window_span)
    levels = {}
    with db.read() as session:
        ev = Evaluation(session, NOW, StatsCache(session, NOW), SeriesCache(session, NOW), {},
                        {r: (before[0], NOW) for r in ("storm", "chronic", "thin", "huge")},
                        BaselineMemo(), set())
        for route in ("storm", "chronic", "thin", "huge"):
            stats = ev.stats.get(route, window, None)
            short = ev.stats.get(route, window_ending(NOW, SHORT), None)
            if route == "storm":
                assert stats.error_rate < ERRORS.warning <= short.error_rate
            levels[route] = _against_trailing(ev, ERRORS, route, window, stats, stats.error_rate,
                                              short, short.error_rate)
    level, reason, basis = levels["storm"]
    assert (level, basis) == (WARNING, "vs the last 3 h")
    assert " over the last 5m vs 1." in reason and " over the last 3 h (p=" in reason
    assert {route: found[0] for route, found in levels.items()} == {
        "storm": WARNING, "chronic": OK, "thin": OK, "huge": CRITICAL}
    # through the job (the detector may confirm the storm too): the same verdicts
    run = run_alerts(jc(db, ERRORS), NOW)
    assert sorted((n.route, n.level) for n in run.notifications) == [
        ("huge", CRITICAL), ("storm", WARNING)]


def test_baselines_are_read_from_the_rollups_when_they_cover_the_span(db):
    # 3 h of traffic rolled up, then the raw events before the window deleted: a baseline that
    # still finds its calls read them from the rollups (a busy route's 3 h is then no scan)
    from sqlalchemy import delete

    from llm_incident.events.models import Event
    from llm_incident.rollups.build import roll_up

    traffic(db, "busy", NOW - timedelta(hours=3), NOW, per_min=10)
    roll_up(db, NOW + timedelta(minutes=5), max_batches=100)
    window = window_ending(NOW, TOKENS.window_span)
    with db.write() as session:
        session.execute(delete(Event).where(Event.ts < window.start))
    with db.read() as session:
        pick = choose(StatsCache(session, NOW), TOKENS, "busy", window,
                      first_seen=NOW - timedelta(hours=3))
        exact = StatsCache(session, NOW).get("busy", pick.window, None, path="exact")
    assert (pick.kind, pick.calls, exact.calls) == ("trailing", 10 * 165, 0)
    assert 250 < pick.value < 500  # the p95 of tokens_out around 300, lognormal σ 0.3
