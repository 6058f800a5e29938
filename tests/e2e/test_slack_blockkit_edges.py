"""The worst inputs a real workspace brings, through the real endpoint; the fake Slack refuses
any message or view that slack_sdk's Block Kit models or Slack's documented limits reject
(tests/blockkit.py), so each test here fails on the first payload Slack would not take."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from llm_incident.events.ingest import ingest_events
from llm_incident.incidents import service as incidents
from tests.blockkit import message_problems, view_problems
from tests.e2e.slackenv import INCIDENTS, WAR_ROOM, opening_thread, slack_server, texts
from tests.fakeslack import FakeSlack

SPECIALS = "*_~`<>&|:#@!"
NASTY_ROUTE = ("r" + SPECIALS * 20)[:200]  # 200 characters, no spaces (a route is one word)
KILLED = [f"route-{i:02d}.{SPECIALS[i % len(SPECIALS)]}" for i in range(60)]
AMPS = ("&<>" * 1000)[:3000]


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def seed_edges(db, now):
    events = []
    for i in range(240):
        ts = (now - timedelta(minutes=60) + timedelta(seconds=15 * i)).isoformat()
        events.append({"event_id": f"edge-{i}", "ts": ts, "route": NASTY_ROUTE,
                       "model": f"model-{i % 120}-{SPECIALS}", "provider": f"p{i % 7}<&>",
                       "tokens_in": 900, "tokens_out": 4000 if i > 120 else 300,
                       "duration_ms": 500 + i, "status": "flagged" if i % 5 == 0 else "ok"})
    for n, route in enumerate(KILLED):
        events.append({"event_id": f"k-{n}", "ts": now.isoformat(), "route": route,
                       "model": "gpt-4o-mini", "tokens_in": 1, "tokens_out": 1})
    with db.write() as session:
        ingest_events(session, events, now=now)


def test_nasty_route_many_models_long_statuses_many_kills_and_incidents(db, slack):
    now = datetime.now(timezone.utc)
    seed_edges(db, now)
    with slack_server(db, slack) as env:
        env.sender.command(f"start {NASTY_ROUTE} quality answers went odd", channel=WAR_ROOM,
                           response="start")
        assert "Incident #1 started" in env.response("start")["text"]
        root = env.root(INCIDENTS)
        env.thread(root, opening_thread(routes=1))
        env.sender.command(f"metrics {NASTY_ROUTE} 1h", channel=INCIDENTS, response="m")
        assert "p95 tokens" in texts(env.response("m"))
        env.sender.command(f"status {AMPS}", channel=INCIDENTS, response="amps")
        assert env.response("amps")["text"] == "Status posted to incident #1."
        for n, route in enumerate(KILLED):
            env.sender.command(f"kill {route}", channel=INCIDENTS, response=f"k{n}")
        for n, route in enumerate(KILLED):
            assert "killed" in env.response(f"k{n}")["text"], route
        env.sender.command("controls", channel=INCIDENTS, response="controls")
        assert texts(env.response("controls")).count("killed") >= 1
        with db.write() as session:
            for n in range(39):
                incidents.start_incident(session, incidents.StartRequest(
                    commander="U0BOB", symptom=AMPS[:200] + f" {n}", routes=(KILLED[n],),
                    channel_id=INCIDENTS), now=now)
        env.sender.command("list", channel=INCIDENTS, response="list")
        assert "#40" in texts(env.response("list"))
        env.sender.event({"type": "app_home_opened", "user": "U0BOB", "tab": "home",
                          "channel": "D0BOB"})
        home = env.slack.wait_for(lambda: env.slack.calls("views.publish"), what="Home")
        assert "Routes with active mitigations" in str(home[-1].args["view"])
        env.sender.command("close #1 all fine &<> now", channel=INCIDENTS, response="close")
        assert env.response("close")["text"] == "Incident #1 closed."
        env.slack.wait_for(env.outbox_settled, timeout=60, what="every post delivered")
        assert not [r for r in env.outbox() if r.status != "sent"], \
            [(r.id, r.status, r.last_error) for r in env.outbox() if r.status != "sent"]
    assert not slack.invalid  # also checked when the fake closes
    pm_files = slack.uploads()
    charts = [f for f in pm_files if f["filename"].endswith(".png")]
    assert len(charts) == 8 and NASTY_ROUTE in charts[0]["filename"]  # its own route first
    comment = next(f["initial_comment"] for f in pm_files if f.get("initial_comment"))
    assert "charts for 8 of the 61 impacted routes" in comment


def test_attach_form_for_a_message_with_hundreds_of_ids_opens_and_says_what_was_left(db, slack):
    now = datetime.now(timezone.utc)
    ids = [f"{n:032x}" for n in range(1, 151)]  # 150 SDK-style ids: 4,949 characters joined
    with db.write() as session:
        ingest_events(session, [{"event_id": i, "route": "support.reply"} for i in ids], now=now)
    with slack_server(db, slack) as env:
        env.sender.command("start support.reply quality odd", channel=WAR_ROOM,
                           response="start")
        env.response("start")
        env.sender.interactive(env.sender.shortcut_payload("bad ones: " + " ".join(ids),
                                                           channel=WAR_ROOM))
        view = env.slack.wait_for(lambda: env.slack.calls("views.open"),
                                  what="the form")[-1].args["view"]
        field = next(b for b in view["blocks"] if b["block_id"] == "event_ids")
        prefilled = field["element"]["initial_value"].split()
        assert 0 < len(prefilled) < len(ids) and prefilled == ids[:len(prefilled)]
        assert len(field["element"]["initial_value"]) <= field["element"]["max_length"]
        assert f"{len(ids) - len(prefilled)} more of the 150 ids" in field["hint"]["text"]


def test_when_slack_refuses_a_form_the_user_is_told_what_slack_said(db, slack):
    slack.fail("views.open", error="invalid_arguments")
    with slack_server(db, slack) as env:
        env.sender.command("start", channel=WAR_ROOM, response="start")
        answer = env.response("start")["text"]
        assert "Slack refused to open the form (invalid_arguments" in answer
        assert "3 seconds" not in answer and "/llm-incident start &lt;routes…&gt;" in answer
        slack.fail("views.open", error="expired_trigger_id")
        env.sender.command("start", channel=WAR_ROOM, response="late")
        assert "Slack allows 3 seconds" in env.response("late")["text"]


def test_the_validator_catches_what_slack_refuses():
    too_long = {"type": "input", "block_id": "a", "label": {"type": "plain_text", "text": "l"},
                "element": {"type": "plain_text_input", "action_id": "v", "max_length": 3000,
                            "initial_value": "x" * 3001}}
    view = {"type": "modal", "title": {"type": "plain_text", "text": "A title of 25 characters!"},
            "blocks": [too_long], "private_metadata": "m" * 3001}
    problems = "\n".join(view_problems(view))
    assert "above its max_length 3000" in problems and "private_metadata is 3001" in problems
    assert "title" in problems
    button = {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "b"},
              "value": "v" * 2001}
    message = {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}},
                          {"type": "actions", "elements": [button, dict(button)]},
                          {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]
               + [{"type": "divider"}] * 48}
    problems = "\n".join(message_problems(message))
    for expected in ("51 blocks", "section text", "button value", "action_id 'a' used 2",
                     "header", "`text` fallback"):
        assert expected in problems, expected
