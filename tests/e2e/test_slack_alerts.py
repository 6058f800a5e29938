"""Alerts through the running server with Slack on: the scheduler posts to the alert channel, a
signed "Start incident" click opens one pre-filled incident (a second click does not open another),
and `/llm-incident alerts` lists the rules and what fires."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from llm_incident.events.ingest import ingest_events
from tests.e2e.slackenv import INCIDENTS, slack_server, texts
from tests.fakeslack import FakeSlack

ALERTS = "C0ALERTS"


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def error_burst(db, route: str, n: int = 60) -> None:
    now = datetime.now(timezone.utc)
    events = [{"event_id": f"{route}-{i}", "route": route,
               "ts": (now - timedelta(seconds=5 * (i + 1))).isoformat(),
               "status": "error" if i % 2 else "ok", "error_code": "503" if i % 2 else None,
               "duration_ms": 700.0, "model": "gpt-4o-mini"} for i in range(n)]
    with db.write() as session:
        assert not ingest_events(session, events, now=now).rejected


def test_alert_posted_once_start_button_and_alerts_command(db, slack):
    error_burst(db, "pay.route")
    with slack_server(db, slack, scheduler=True, alert_channel=ALERTS,
                      alert_interval_seconds=1) as env:
        alert = slack.wait_for(lambda: next(iter(slack.posts(channel=ALERTS)), None),
                               what="an alert in the alert channel")
        assert "CRITICAL error rate on `pay.route`: 50.0%" in texts(alert)
        start = next(e for b in alert["blocks"] if b["type"] == "actions" for e in b["elements"]
                     if e["text"]["text"] == "Start incident")
        message = {"ts": alert["ts"], "text": alert["text"], "blocks": alert["blocks"]}
        env.sender.interactive(env.sender.button_payload(start, message=message, channel=ALERTS,
                                                         user="U0ONCALL", response="first"))
        assert "Incident #1 started" in env.response("first")["text"]
        env.sender.interactive(env.sender.button_payload(start, message=message, channel=ALERTS,
                                                         user="U0OTHER", response="second"))
        assert "#1 was already started" in env.response("second")["text"]
        def alert_edited():
            return [c.args for c in slack.calls("chat.update") if c.args["ts"] == alert["ts"]]

        edit = slack.wait_for(alert_edited, what="the alert edited in place")[-1]
        assert edit["channel"] == ALERTS
        assert "Incident #1 started from this alert by <@U0ONCALL>" in texts(edit)
        assert "Start incident" not in str(edit["blocks"])
        root = env.root(INCIDENTS)
        assert "critical: error rate on `pay.route`: 50.0%" in texts(root)
        (incident,) = env.incidents()
        assert (incident.routes, incident.incident_class, incident.severity,
                incident.commander) == (["pay.route"], "provider", "sev1", "U0ONCALL")
        assert "trigger" in [e.kind for e in env.timeline(1)]

        env.sender.command("alerts", channel=ALERTS, response="list")
        listing = env.response("list")
        assert "error rate over 15m on every route" in texts(listing)
        assert "`pay.route` error-rate: 50.0%" in texts(listing)
        # several more evaluations ran meanwhile: still exactly one alert
        health = env.app.state.scheduler.status()
        assert health["leader"] is True
        slack.wait_for(lambda: env.app.state.scheduler.status()["last_runs"].get("alerts"))
        alerts = [p for p in slack.posts(channel=ALERTS) if p["text"].startswith("🔴")]
        assert len(alerts) == 1  # the other post there is the link to the incident thread
        slack.wait_for(lambda: any("follow it in its thread" in p["text"]
                                   for p in slack.posts(channel=ALERTS)), what="the thread link")
