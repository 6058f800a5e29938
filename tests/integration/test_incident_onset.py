"""The incident knows when it began (SQLite, PostgreSQL): the demo's token explosion declared 27
minutes after its prompt change gets the onset at the change, the pre-change baseline everywhere
(snapshot, postmortem, "did it work?"), prompt v42 as the cause and a clamp with a number; `since`
overrides the detection; the Triage message and runbook are redrawn in place each minute."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from llm_incident.alerts.recovery import assess
from llm_incident.app import create_app
from llm_incident.commands.context import Context
from llm_incident.commands.core import CommandCore
from llm_incident.console.render import render_reply
from llm_incident.console.shell import ConsoleDelivery
from llm_incident.demo import INCIDENT_MINUTES, seed_demo
from llm_incident.incidents import service as incidents
from llm_incident.incidents.postmortem_data import compile_postmortem
from llm_incident.incidents.postmortem_markdown import render_markdown
from llm_incident.metrics.stats import stats_for
from llm_incident.scheduler.context import JobContext
from llm_incident.scheduler.triage_refresh import refresh_triage
from tests.support import TEST_KEY, live_server, settings_for

NOW = datetime(2026, 12, 2, 20, 4, tzinfo=timezone.utc)
CHANGE = NOW - timedelta(minutes=INCIDENT_MINUTES)  # the demo's prompt change (v42)
MIN = timedelta(minutes=1)


def ctx(seconds: float = 0, **kw) -> Context:
    return Context(user="U_ANA", channel="C_ONCALL", now=NOW + timedelta(seconds=seconds), **kw)


@pytest.fixture
def demo(db):
    with db.write() as session:
        seed_demo(session, "token-explosion", now=NOW)
    delivery = ConsoleDelivery()
    return CommandCore(db, delivery), delivery


def started(demo, text="start support.reply cost tokens exploding"):
    core, delivery = demo
    answer = core.run(text, ctx())
    posts, _ = delivery.drain()
    return answer, {p.key: p for p in posts}


def test_the_onset_is_the_prompt_change_and_the_thread_says_so(demo, db):
    answer, posts = started(demo)
    with db.read() as session:
        incident = incidents.get_incident(session, 1)
        entries = incidents.timeline(session, incident)
    assert incident.onset_source == "detected"
    assert abs(incident.onset_at - CHANGE) <= 2 * MIN, incident.onset_at
    lag = int((NOW - incident.onset_at).total_seconds() // 60)
    assert f"It began {incident.onset_at:%Y-%m-%d %H:%M} UTC, {lag}m before it was declared." \
        in answer.reply.text
    card = render_reply(posts["incident:1:card"].reply)
    assert f"Began: {incident.onset_at:%Y-%m-%d %H:%M} UTC, {lag}m before it was declared" in card
    runbook = render_reply(posts["incident:1:runbook"].reply)
    assert "_to fill_" not in runbook.split("Current mitigation")[0]
    assert "Start time: " + f"{incident.onset_at:%Y-%m-%d %H:%M} UTC (detected: p95 tokens_out" \
        in runbook
    assert "Recent deploy or prompt change? prompt change on support.reply" in runbook
    assert "support.reply.main v42" in runbook
    triage = posts["incident:1:triage"].reply
    text = render_reply(triage)
    assert "Attribution: prompt_version 42" in text and "appeared at the onset" in text
    clamp = next(b for block in triage.blocks for b in getattr(block, "buttons", ())
                 if b.command.startswith("clamp support.reply "))
    value = int(clamp.command.split()[-1])
    with db.read() as session:
        before = stats_for(session, "support.reply", CHANGE - timedelta(hours=2), CHANGE)
    assert before.p99_duration_ms is not None and value >= before.p95_tokens_out
    assert value < 2 * before.p95_tokens_out  # the pre-onset p99, rounded up: not the new regime
    assert [e.kind for e in entries][:2] == ["start", "triage"]
    assert "likely cause: prompt change on support.reply" in entries[1].text
    keys = list(posts)
    assert keys.index("incident:1:runbook") + 1 == keys.index("incident:1:triage")


def test_the_snapshot_baseline_is_the_window_before_the_onset(demo, db):
    _, posts = started(demo)
    with db.read() as session:
        onset = incidents.get_incident(session, 1).onset_at
        span = NOW - onset
        reference = stats_for(session, "support.reply", onset - span, onset)
        inside = stats_for(session, "support.reply", NOW - timedelta(minutes=30), NOW)
    table = next(b for b in posts["incident:1:snapshot:support.reply"].reply.blocks
                 if hasattr(b, "rows"))
    row = next(r for r in table.rows if r[0] == "p95 tokens_out")
    assert row[1] == f"{reference.p95_tokens_out:,}"
    assert reference.p95_tokens_out < 1000 < inside.p95_tokens_out  # not from inside the regression


def test_since_overrides_the_detection_and_bad_times_are_refused(demo, db):
    core, delivery = demo
    answer = core.run("start support.reply cost since 19:50 tokens exploding", ctx())
    assert "It began 2026-12-02 19:50 UTC (given), 14m before it was declared." in answer.reply.text
    with db.read() as session:
        incident = incidents.get_incident(session, 1)
    assert (incident.onset_at, incident.onset_source) == (datetime(2026, 12, 2, 19, 50,
                                                                   tzinfo=timezone.utc), "since")
    assert incident.symptom == "tokens exploding"
    for bad, words in (("since 25:00 x", "not understood"), ("since 2026-12-03T00:00:00Z x", "future"),
                       ("since 30d x", "more than 7 days ago"), ("since", "needs a time")):
        reply = core.run(f"start support.reply cost {bad}", ctx()).reply.text
        assert words in reply, (bad, reply)
    with db.read() as session:
        assert len(incidents.list_open(session)) == 1


def test_the_form_takes_a_start_time(demo, db):
    core, delivery = demo
    core.submit("start", {"symptom": "long answers", "incident_class": "cost",
                          "routes": ["support.reply"], "since": "20m", "severity": "sev2"},
                "", ctx())
    with db.read() as session:
        incident = incidents.get_incident(session, 1)
    assert incident.onset_at == NOW - timedelta(minutes=20) and incident.onset_source == "since"


def test_the_triage_message_is_redrawn_in_place_each_minute_for_an_hour(demo, db):
    started(demo)
    jc = JobContext(db=db, delivery=ConsoleDelivery())
    assert refresh_triage(jc, NOW + MIN) == [1]
    posts, _ = jc.delivery.drain()
    assert [(p.key, p.replace) for p in posts] == [("incident:1:runbook", True),
                                                   ("incident:1:triage", True)]
    assert "updated 2026-12-02 20:05 UTC" in render_reply(posts[1].reply)
    assert refresh_triage(jc, NOW + MIN + timedelta(seconds=30)) == []  # same minute: once
    assert refresh_triage(JobContext(db=db, delivery=ConsoleDelivery()), NOW + 2 * MIN) == [1]
    assert refresh_triage(jc, NOW + timedelta(minutes=61)) == []  # past the first hour


def test_the_postmortem_counts_from_the_onset(demo, db):
    core, delivery = demo
    started(demo)
    core.run("clamp support.reply 800", ctx(seconds=180))
    core.run("close clamped", ctx(seconds=600))
    with db.read() as session:
        incident = incidents.get_incident(session, 1)
        pm = compile_postmortem(session, incident, now=NOW + timedelta(minutes=10))
        onset = incident.onset_at
        reference = stats_for(session, "support.reply", onset - (NOW + 10 * MIN - onset), onset)
    assert pm.phases[0].end == onset and pm.time_to_mitigate == NOW + 3 * MIN - onset
    assert pm.detection_lag == NOW - onset
    baseline = next(m for m in pm.metrics if m.route == "support.reply").phase("baseline")
    assert baseline.p95_tokens_out == reference.p95_tokens_out
    md = render_markdown(pm)
    lag = int((NOW - onset).total_seconds() // 60)
    assert f"- **Began:** {onset:%Y-%m-%d %H:%M} UTC (detected from the data)" in md
    assert f"- **Declared:** 2026-12-02 20:04 UTC (detection lag: {lag}m)" in md
    assert "- **Triage at the start:** began" in md and "prompt_version 42" in md
    assert "support.reply.main v42" in md.split("### Changes recorded during the incident")[0]


def test_did_it_work_compares_with_the_route_before_the_onset(demo, db):
    started(demo)
    with db.read() as session:
        incident = incidents.get_incident(session, 1)
        entries = incidents.timeline(session, incident)
        change = NOW + MIN
        recovery = assess(session, incident, entries, route="support.reply", change_ts=change,
                          now=change + 5 * MIN, rules=())
        before = stats_for(session, "support.reply", incident.onset_at - 5 * MIN,
                           incident.onset_at)
    check = next(c for c in recovery.checks if c.metric == "p95_tokens_out")
    assert check.baseline == before.p95_tokens_out  # not "the day baseline has 0 calls"


def test_the_triage_api(db):
    with db.write() as session:
        seed_demo(session, "token-explosion", now=NOW)
    app = create_app(settings_for(db), database=db, clock=lambda: NOW)
    with live_server(app) as base, httpx.Client(base_url=base, timeout=30, headers={
            "Authorization": f"Bearer {TEST_KEY}"}) as api:
        body = api.get("/v1/routes/support.reply/triage", params={"class": "cost"}).json()
        given = api.get("/v1/routes/support.reply/triage",
                        params={"since": "2026-12-02T19:50:00Z"}).json()
        bad = [api.get("/v1/routes/support.reply/triage", params=p).status_code
               for p in ({"lookback": "5m"}, {"lookback": "2d"}, {"class": "nope"},
                         {"since": "yesterday"})]
        future = api.get("/v1/routes/support.reply/triage",
                         params={"since": "2026-12-03T00:00:00Z"}).json()
        ancient = api.get("/v1/routes/support.reply/triage",
                          params={"since": "2000-01-01T00:00:00Z"}).json()
        quiet = api.get("/v1/routes/billing.explain/triage").json()
    assert abs(datetime.fromisoformat(body["onset"]) - CHANGE) <= 2 * MIN
    assert body["onset_source"] == "detected" and body["main_stat"] == "p95_tokens_out"
    assert body["attributions"][0]["value"] == "42"
    assert "v42" in body["causes"][0]["ref"] and body["causes"][0]["kind"] == "prompt"
    assert any(s["verb"] == "clamp" for s in body["suggestions"])
    assert body["runbook_fields"]["Start time"].startswith(f"{CHANGE:%Y-%m-%d}")
    assert given["onset"] == "2026-12-02T19:50:00+00:00" and given["onset_source"] == "since"
    assert bad == [400, 400, 400, 400]
    assert future["onset_source"] == "detected" and "not in the past" in future["warnings"][0]
    assert ancient["onset"] == "2026-11-25T20:04:00+00:00" and "7 days back" in ancient["warnings"][0]
    assert quiet["found"] is False and quiet["onset"] is None


def test_a_failing_triage_never_stops_the_start(demo, db, monkeypatch, caplog):
    from llm_incident.commands import triage_posts

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("a bug in the statistics")

    monkeypatch.setattr(triage_posts, "triage", broken)
    answer, posts = started(demo)
    assert answer.reply.text.startswith("Incident #1 started")
    assert "incident:1:triage" not in posts and "incident:1:runbook" in posts
    assert "triage of support.reply failed" in caplog.text
    with db.read() as session:
        incident = incidents.get_incident(session, 1)
    assert incident.onset_at is None  # nothing made up: the card shows no "Began"
    assert "Began" not in render_reply(posts["incident:1:card"].reply)


def test_started_from_an_alert_the_thread_says_the_onset_is_the_alerts(db):
    from llm_incident.commands.alerting import AlertConfig
    from llm_incident.scheduler.alert_job import run_alerts

    with db.write() as session:
        seed_demo(session, "token-explosion", now=NOW)
    fired = run_alerts(JobContext(db=db), NOW).notifications
    note = next(n for n in fired if n.rule_id == "p95-tokens-out")
    delivery = ConsoleDelivery()
    core = CommandCore(db, delivery, alerts=AlertConfig(rules=JobContext(db=db).rules))
    assert "Incident #1 started" in core.run(f"alerts start {note.id}", ctx()).reply.text
    posts = {p.key: p for p in delivery.drain()[0]}
    with db.read() as session:
        entries = incidents.timeline(session, incidents.get_incident(session, 1))
    triage_entry = next(e for e in entries if e.kind == "triage")
    assert "(the alert's onset)" in triage_entry.text and "(since)" not in triage_entry.text
    runbook = render_reply(posts["incident:1:runbook"].reply)
    assert "(the onset of the alert that started it)" in runbook
    assert "given with `since`" not in runbook
