"""Socket Mode end to end: the real server with SLACK_APP_TOKEN, connected through a fake
apps.connections.open to a local websocket endpoint that sends envelopes as Slack does."""

from __future__ import annotations

import pytest

from tests.e2e.slackenv import INCIDENTS, WAR_ROOM, opening_thread, seed, texts
from tests.e2e.socketenv import APP_TOKEN, socket_server
from tests.fakeslack import FakeSlack
from tests.fakesocket import FakeSocketMode
from tests.slackpayloads import trigger_id


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def socket():
    with FakeSocketMode() as fake:
        yield fake


def bare(ack) -> bool:
    """An ack with nothing but the envelope_id (Slack then shows nothing of its own)."""
    return set(ack.message) == {"envelope_id"}


def acked(ack) -> bool:
    """A command's ack: the envelope_id, and at most an immediate answer as its payload."""
    return set(ack.message) <= {"envelope_id", "payload"} and (
        ack.payload is None or isinstance(ack.payload.get("text"), str))


def test_command_button_modal_and_home_over_socket_mode(db, slack, socket):
    seed(db)
    with socket_server(db, slack, socket) as (env, sender):
        [opened] = slack.calls("apps.connections.open")
        assert opened.token == APP_TOKEN
        assert not [c for c in slack.calls(ok_only=False) if c.method == "auth.test"
                    and c.token == APP_TOKEN]

        start = sender.command("start support.reply cost tokens exploding", channel=WAR_ROOM,
                               response="start")
        assert acked(start)
        assert "Incident #1 started" in env.response("start")["text"]
        root = env.root(INCIDENTS)
        thread = env.thread(root, opening_thread(routes=1))
        assert "Incident #1 — tokens exploding" in texts(root)

        assert acked(sender.command("status rollback of prompt v42 under way", channel=WAR_ROOM,
                                   response="status"))
        env.response("status")
        env.slack.wait_for(lambda: [p for p in env.slack.posts(thread_ts=root["ts"])
                                    if "rollback of prompt v42 under way" in texts(p)],
                           what="the status line in the thread")

        panel = next(p for p in thread if p["text"] == "Mitigations for support.reply")
        kill = next(e for b in panel["blocks"] if b["type"] == "actions" for e in b["elements"]
                    if e["text"]["text"] == "Kill route")
        message = {"ts": panel["ts"], "thread_ts": root["ts"], "text": panel["text"],
                   "blocks": panel["blocks"]}
        click = sender.interactive(env.sender.button_payload(kill, message=message,
                                                             channel=INCIDENTS, response="kill"))
        assert bare(click)
        assert "killed `support.reply`" in env.response("kill")["text"]
        env.slack.wait_for(lambda: [c for c in env.slack.calls("chat.update")
                                    if c.args["ts"] == panel["ts"]
                                    and "⛔ killed" in texts(c.args)],
                           what="the panel updated in place")

        trigger = trigger_id()
        assert acked(sender.command("start", channel=WAR_ROOM, trigger=trigger, response="form"))
        form = env.slack.wait_for(lambda: env.slack.calls("views.open"))[0].args
        assert form["trigger_id"] == trigger
        view = form["view"]
        refused = sender.interactive(env.sender.submission_payload(view, {
            "symptom": "  ", "incident_class": "unknown", "severity": "sev2"}))
        assert refused.payload == {"response_action": "errors",
                                   "errors": {"symptom": "Symptom is required."}}
        accepted = sender.interactive(env.sender.submission_payload(view, {
            "symptom": "provider 429 storm", "incident_class": "provider",
            "routes": ["search.summarize"], "severity": "sev1"}))
        assert bare(accepted)
        assert "Incident #2 started" in env.response("form")["text"]

        env.slack.wait_for(env.outbox_settled, what="every post delivered")
        assert bare(sender.event({"type": "app_home_opened", "user": "U0BOB", "channel": "D0BOB",
                                  "tab": "home", "event_ts": "1.2"}))
        published = env.slack.wait_for(lambda: env.slack.calls("views.publish"))[0].args
    assert published["user_id"] == "U0BOB"
    home = texts({"blocks": published["view"]["blocks"]})
    assert "provider 429 storm" in home and "`support.reply`: killed" in home
    assert [i.symptom for i in env.incidents()] == ["tokens exploding", "provider 429 storm"]
    assert [e.kind for e in env.timeline(1)] == ["start", "triage", "status", "control"]
    assert socket.strays() == []


def test_refresh_requested_reconnects_before_letting_the_old_connection_go(sqlite_db, slack,
                                                                            socket):
    with socket_server(sqlite_db, slack, socket) as (env, sender):
        assert sender.command("help", response="h0").connection == 1
        asked = socket.disconnect("refresh_requested")
        socket.wait_connections(2)
        assert asked == 1 and len(slack.calls("apps.connections.open")) == 2
        tickets = [c.result["url"] for c in slack.calls("apps.connections.open")]
        assert tickets[0] != tickets[1]

        # Slack may still deliver on the old connection until it closes it: acked there.
        late = socket.ack(sender.command_envelope("help", response="late", connection=1))
        assert late.connection == 1
        fresh = [sender.command_envelope("help", response=f"new{i}") for i in range(5)]
        assert [socket.ack(e).connection for e in fresh] == [2] * 5
        socket.close(1)
        after_close = sender.command("list", response="after-close")
        for name in ("h0", "late", *(f"new{i}" for i in range(5)), "after-close"):
            env.response(name)
    assert after_close.connection == 2 and acked(after_close)
    assert len(slack.calls("apps.connections.open")) == 2  # Slack's close did not reconnect again
    assert socket.strays() == []


def test_a_dropped_connection_is_replaced_and_the_next_envelopes_are_handled(sqlite_db, slack,
                                                                            socket):
    with socket_server(sqlite_db, slack, socket) as (env, sender):
        socket.close(1)  # no disconnect message: the network dropped it
        socket.wait_connections(2)
        ack = sender.command("help", response="again")
        assert "llm-incident commands" in env.response("again")["text"]
    assert ack.connection == 2 and len(slack.calls("apps.connections.open")) == 2


def test_a_failed_reconnect_is_retried_until_slack_answers(sqlite_db, slack, socket):
    with socket_server(sqlite_db, slack, socket) as (env, sender):
        slack.fail("apps.connections.open", error="internal_error")
        socket.close(1)
        socket.wait_connections(2)
        ack = sender.command("help", response="back")
        env.response("back")
    opens = slack.calls("apps.connections.open", ok_only=False)
    assert [c.ok for c in opens] == [True, False, True] and ack.connection == 2


def test_many_envelopes_in_flight_around_a_reconnect_are_each_acked_once(sqlite_db, slack,
                                                                         socket):
    with socket_server(sqlite_db, slack, socket) as (env, sender):
        before = [sender.command_envelope("help", response=f"b{i}") for i in range(50)]
        socket.disconnect()
        during = [sender.command_envelope("help", response=f"d{i}", connection=1)
                  for i in range(10)]
        socket.wait_connections(2)
        after = [sender.command_envelope("help", response=f"a{i}") for i in range(50)]
        acks = {e: socket.ack(e) for e in before + during + after}
        env.slack.wait_for(lambda: len(env.slack.responses()) >= 110, what="110 answers")
    assert all(a.message == {"envelope_id": e} for e, a in acks.items())
    assert {acks[e].connection for e in before + during} == {1}
    assert {acks[e].connection for e in after} == {2}
    for prefix, count in (("b", 50), ("d", 10), ("a", 50)):
        assert all(len(env.slack.responses(f"{prefix}{i}")) == 1 for i in range(count))
    assert socket.strays() == []


def test_an_events_api_retry_runs_once(sqlite_db, slack, socket):
    with socket_server(sqlite_db, slack, socket) as (env, sender):
        event = {"type": "app_home_opened", "user": "U0BOB", "tab": "home", "event_ts": "1.3"}
        first = sender.event(event, event_id="Ev0HOME1")
        retry = sender.event(event, event_id="Ev0HOME1", retry_attempt=1)
        env.slack.wait_for(lambda: env.slack.calls("views.publish"))
        marker = sender.command("help", response="marker")  # a later envelope, fully handled
        env.response("marker")
    assert bare(first) and bare(retry) and acked(marker)
    assert len(env.slack.calls("views.publish")) == 1


def test_shutdown_closes_the_connection(sqlite_db, slack, socket):
    with socket_server(sqlite_db, slack, socket) as (env, sender):
        sender.command("help", response="h")
        assert socket.is_open(1)
    socket.wait_closed(1)
