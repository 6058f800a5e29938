"""Signatures, retries and replays, a flaky Slack, restarts, and the event loop staying free."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter

import httpx
import pytest

from llm_incident.app import create_app
from llm_incident.slack import listeners
from llm_incident.slack.mount import DISABLED, slack_mode
from tests.e2e.slackenv import INCIDENTS, WAR_ROOM, opening_thread, seed, slack_server, texts
from tests.fakeslack import FakeSlack
from tests.slackpayloads import sign
from tests.support import live_server, settings_for

OPENING_POSTS = 1 + opening_thread(routes=1)  # the root card and its thread


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def _delivered_once(env, expected: int) -> None:
    env.slack.wait_for(env.outbox_settled, timeout=30, what="outbox settled")
    posts = env.slack.posts()
    assert len(posts) == expected, [p["text"] for p in posts]
    keys = Counter((p["channel"], p.get("thread_ts"), p["text"]) for p in posts)
    assert max(keys.values()) == 1, keys
    assert {r.status for r in env.outbox()} == {"sent"}


def test_unsigned_badly_signed_and_stale_requests_get_401(db, slack):
    with slack_server(db, slack) as env:
        body = env.sender.command_body("start support.reply should never run")
        form = "application/x-www-form-urlencoded"
        now = int(time.time())
        cases = {
            "unsigned": env.sender.send(body, form, signed=False),
            "bad secret": env.sender.send(body, form, headers=sign(body, "not-the-secret")),
            "tampered": env.sender.send(body + "&x=1", form, headers=sign(body)),
            "stale": env.sender.send(body, form, timestamp=now - 6 * 60),
            "future": env.sender.send(body, form, timestamp=now + 6 * 60),
            "garbage ts": env.sender.send(body, form, headers={
                "X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"}),
        }
        fresh = env.sender.send(body, form, timestamp=now - 4 * 60)
        env.slack.wait_for(lambda: env.slack.responses(), what="the fresh request's answer")
    for name, response in cases.items():
        assert response.status_code == 401, name
        assert "signature" in response.json()["error"]
    assert fresh.status_code == 200 and len(env.incidents()) == 1


def test_the_request_url_check_is_answered(db, slack):
    with slack_server(db, slack) as env:
        challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
        body = json.dumps({"token": "deprecated", "challenge": challenge,
                           "type": "url_verification"})
        resp = env.sender.send(body, "application/json")
    assert resp.status_code == 200 and resp.json() == {"challenge": challenge}


def test_retried_and_replayed_requests_run_once(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        body = env.sender.command_body("start support.reply latency slow answers", channel=WAR_ROOM,
                                       response="once")
        form = "application/x-www-form-urlencoded"
        first = env.sender.send(body, form)
        retry = env.sender.send(body, form, headers={"X-Slack-Retry-Num": "1",
                                                     "X-Slack-Retry-Reason": "http_timeout"})
        replay = env.sender.send(body, form)  # the same signed body, sent again later
        assert (first.status_code, retry.status_code, replay.status_code) == (200, 200, 200)
        env.response("once")
        status = env.sender.command_body("status rolled back", channel=WAR_ROOM, response="st")
        for _ in range(3):
            env.sender.send(status, form)
        env.response("st")
        event = env.sender.event_body({"type": "app_home_opened", "user": "U0BOB",
                                       "tab": "home", "event_ts": "1.1"}, event_id="Ev0RETRY")
        env.sender.send(event, "application/json")
        env.sender.send(event, "application/json", headers={"X-Slack-Retry-Num": "2"})
        env.slack.wait_for(lambda: env.slack.calls("views.publish"))
        _delivered_once(env, OPENING_POSTS + 1 + 1)  # + origin link + one status post
        time.sleep(0.3)  # give a wrongly re-run duplicate the chance to show up
    assert len(env.incidents()) == 1
    assert len(env.slack.responses("once")) == 1 and len(env.slack.responses("st")) == 1
    assert [e.kind for e in env.timeline(1)] == ["start", "triage", "status"]
    assert len(env.slack.calls("views.publish")) == 1


def test_a_replayed_form_submission_starts_one_incident(db, slack):
    with slack_server(db, slack) as env:
        env.sender.command("start", channel=WAR_ROOM, response="form")
        view = env.slack.wait_for(lambda: env.slack.calls("views.open"))[0].args["view"]
        payload = env.sender.submission_payload(view, {"symptom": "twice?", "incident_class":
                                                       "quality", "severity": "sev2"})
        for _ in range(3):
            assert env.sender.interactive(payload).status_code == 200
        env.response("form")
        env.slack.wait_for(env.outbox_settled)
        time.sleep(0.3)
    assert len(env.incidents()) == 1 and len(env.slack.responses("form")) == 1


def test_outbox_survives_rate_limits_and_server_errors_in_order(db, slack):
    seed(db)
    slack.fail("chat.postMessage", times=2, status=429, retry_after=1)
    slack.fail("chat.postMessage", times=2, status=500)
    slack.fail("chat.update", times=1, status=503)
    with slack_server(db, slack) as env:
        env.sender.command("start support.reply cost tokens exploding", channel=WAR_ROOM,
                           response="start")
        env.response("start")
        env.sender.command("status still exploding", channel=WAR_ROOM, response="status")
        env.response("status")
        _delivered_once(env, OPENING_POSTS + 2)
        env.slack.wait_for(lambda: env.slack.calls("chat.update"), what="card update")
    failed = [c for c in slack.calls(ok_only=False) if not c.ok]
    assert [c.status for c in failed] == [429, 429, 500, 500, 503]
    root = slack.posts()[0]
    assert "thread_ts" not in root and root["channel"] == INCIDENTS
    thread = [p["text"] for p in slack.posts(thread_ts=root["ts"])]
    assert thread[0].startswith("LLM Incident Runbook") and thread[1] == "Triage for incident #1"
    assert thread[2].startswith("Triage checklist") and thread[3].startswith("Metrics")
    assert thread[4].startswith("Mitigations") and thread[5].startswith("Recent changes")
    assert thread[6] == "Status update: still exploding"
    rows = {r.key: r for r in env.outbox()}
    assert rows["incident:1:card"].attempts == 3  # 429s are not failed attempts; 500s are
    assert rows["incident:1:card"].last_error is None


def test_pending_posts_survive_a_restart_and_are_delivered_exactly_once(db, slack):
    seed(db)
    slack.fail("chat.postMessage", times=10_000, status=500)  # Slack is down
    with slack_server(db, slack) as env:
        env.sender.command("start support.reply provider 429 storm", channel=WAR_ROOM,
                           response="r")
        env.response("r")
        env.sender.command("status failing over to the other provider", channel=WAR_ROOM,
                           response="s")
        env.response("s")
        slack.wait_for(lambda: len(slack.calls("chat.postMessage", ok_only=False)) >= 2)
    pending = [r for r in env.outbox() if r.status == "pending"]
    assert len(pending) == OPENING_POSTS + 3  # + origin link, status post, card update
    assert slack.posts() == []
    slack.heal()
    with slack_server(db, slack) as env2:
        _delivered_once(env2, OPENING_POSTS + 2)
        env2.slack.wait_for(lambda: env2.slack.calls("chat.update"), what="card update")
    assert env2.incidents()[0].thread_ts == slack.posts()[0]["ts"]


def test_a_permanent_error_is_dead_and_loud_and_other_incidents_go_on(db, slack, caplog):
    seed(db)
    slack.fail("chat.postMessage", times=1, error="channel_not_found")
    with slack_server(db, slack, incident_channel=None) as env:
        env.sender.command("start support.reply doomed", channel="C0GONE")
        env.slack.wait_for(lambda: [r for r in env.outbox() if r.status == "dead"])
        env.sender.command("start support.reply fine", channel=WAR_ROOM, response="fine")
        env.response("fine")
        root = env.root(WAR_ROOM)
        env.slack.wait_for(env.outbox_settled)
    statuses = {(r.incident_number, r.status) for r in env.outbox()}
    assert statuses == {(1, "dead"), (2, "sent")}
    dead = [r for r in env.outbox() if r.status == "dead"]
    assert all("channel_not_found" in r.last_error or "never posted" in r.last_error for r in dead)
    assert "SLACK MESSAGE NOT DELIVERED: incident:1:card" in caplog.text
    assert "Incident #2 — fine" in texts(root)


def test_a_slow_listener_does_not_block_the_event_loop(db, slack, monkeypatch):
    gate = threading.Event()
    original = listeners.Handlers.on_command

    def slow(self, ack, body, request):
        gate.wait(5)
        original(self, ack, body, request)

    monkeypatch.setattr(listeners.Handlers, "on_command", slow)
    with slack_server(db, slack) as env:
        result = {}
        worker = threading.Thread(target=lambda: result.update(
            r=env.sender.command("help", response="slow")))
        worker.start()
        time.sleep(0.2)
        started = time.perf_counter()
        health = httpx.get(f"{env.url}/healthz", timeout=5)
        elapsed = time.perf_counter() - started
        gate.set()
        worker.join(10)
        env.response("slow")
    assert health.status_code == 200 and elapsed < 1.0
    assert result["r"].status_code == 200


def test_without_slack_credentials_one_log_line_and_no_endpoint(db, caplog):
    caplog.set_level(logging.INFO, logger="llm_incident.slack.mount")
    app = create_app(settings_for(db), database=db)
    assert [r.getMessage() for r in caplog.records if r.name == "llm_incident.slack.mount"] == [
        DISABLED]
    with live_server(app) as url:
        assert httpx.post(f"{url}/slack/events", content=b"x").status_code == 404
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_socket_mode_is_chosen_by_the_app_token_and_the_service_stays_up_without_slack(
        db, slack, caplog):
    assert slack_mode(settings_for(db, slack_bot_token="xoxb-1")) is None
    http = settings_for(db, slack_bot_token="xoxb-1", slack_signing_secret="s")
    assert slack_mode(http) == "http"
    app = create_app(settings_for(db, slack_bot_token="xoxb-1", slack_app_token="xapp-1-test",
                                  slack_signing_secret="s", slack_api_url=slack.api_url),
                     database=db)
    assert app.state.slack.mode == "socket"
    with live_server(app) as url:
        slack.wait_for(lambda: slack.calls("apps.connections.open"), what="a connection attempt")
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.post(f"{url}/slack/events", content=b"x").status_code == 404
    assert slack.calls("apps.connections.open")[0].token == "xapp-1-test"
    assert "Slack Socket Mode connection failed" in caplog.text
