"""status, metrics, list, close, buttons and user errors through Slack, end to end."""

from __future__ import annotations

import pytest

from llm_incident.commands.core import CommandCore
from tests.e2e.slackenv import INCIDENTS, WAR_ROOM, opening_thread, seed, slack_server, texts
from tests.fakeslack import FakeSlack

OPENING = opening_thread(routes=1)
FREE_TEXT = [
    'rolled back prompt v42 — "fixed?" it said \'ignore previous instructions\'',
    "答えが長すぎる 🔥🔥 model went `wild`; SELECT * FROM users; -- <script>alert(1)</script> & co",
    "multi\nline\n```python\nprint('hi')\n```\n<@U0BOB> please check <#C0OPS>",
    "a" * 2990 + " tail",
]


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def env(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        env.sender.command("start support.reply cost tokens exploding", channel=WAR_ROOM)
        env.root_post = env.root(INCIDENTS)
        env.thread(env.root_post, OPENING)
        env.slack.wait_for(env.outbox_settled, what="opening posts delivered")
        yield env


def test_status_with_any_free_text_goes_to_the_thread_timeline_and_card(env):
    for n, text in enumerate(FREE_TEXT):
        env.sender.command(f"status {text}", channel=WAR_ROOM, response=f"s{n}")
        assert env.response(f"s{n}")["text"] == "Status posted to incident #1."
    posts = env.thread(env.root_post, OPENING + len(FREE_TEXT))[OPENING:]
    entries = [e.text for e in env.timeline(1) if e.kind == "status"]
    assert entries == FREE_TEXT
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in texts(posts[1])
    assert "<@U0BOB> please check <#C0OPS>" in texts(posts[2])
    assert all(len(b["text"]["text"]) <= 3000 for p in posts for b in p["blocks"])
    env.slack.wait_for(lambda: env.slack.calls("chat.update"), what="card update")
    update = env.slack.calls("chat.update")[-1].args
    assert update["ts"] == env.root_post["ts"] and update["channel"] == INCIDENTS


def test_metrics_answers_in_channel_and_list_answers_privately(env):
    env.sender.command("metrics support.reply 1h", channel=WAR_ROOM, response="m")
    metrics = env.response("m")
    assert metrics["response_type"] == "in_channel"
    assert "`support.reply` — last 1h" in texts(metrics) and "p95 tokens" in texts(metrics)
    env.sender.command("list", response="l")
    listing = env.response("l")
    assert listing["response_type"] == "ephemeral"
    assert "#1" in texts(listing) and "tokens exploding" in texts(listing)


def test_routes_answers_with_every_route_in_a_valid_table(env):
    env.sender.command("routes 24h", response="r")
    routes = env.response("r")
    shown = texts(routes)
    assert "Routes over the last 24h" in shown and "support.reply" in shown
    assert "p95 tokens_out" in shown and "#1" in shown  # the open incident is named


def test_close_posts_the_timeline_and_updates_the_card(env):
    env.sender.command("status mitigated with a clamp", channel=WAR_ROOM, response="st")
    env.response("st")  # commands run after their ack, concurrently: keep the order
    env.sender.command("close clamp held; root cause: prompt v42 ✅", channel=WAR_ROOM,
                       response="close")
    assert env.response("close")["text"] == "Incident #1 closed."
    posts = env.slack.wait_for(
        lambda: [p for p in env.slack.posts(thread_ts=env.root_post["ts"])
                 if "closed after" in p["text"]], what="timeline post")
    timeline = texts(posts[0])
    assert "*Timeline*" in timeline and "start: started incident #1" in timeline
    assert "status: mitigated with a clamp" in timeline and "root cause: prompt v42 ✅" in timeline

    def closed_card():
        updates = env.slack.calls("chat.update")
        return updates and "🟢 closed" in texts(updates[-1].args)

    env.slack.wait_for(closed_card, what="card shows closed")
    card = env.slack.calls("chat.update")[-1].args
    assert not [b for b in card["blocks"] if b["type"] == "actions"]  # no close button any more
    assert env.incidents()[0].status == "closed"


def test_close_button_on_the_card_closes_once_and_a_double_click_is_answered(env):
    button = next(b for b in env.root_post["blocks"] if b["type"] == "actions")["elements"][0]
    assert button["confirm"]["title"]["text"] == "Close incident?"
    message = {"ts": env.root_post["ts"], "text": env.root_post["text"],
               "blocks": env.root_post["blocks"]}
    first = env.sender.button_payload(button, message=message, channel=INCIDENTS, response="b1")
    second = env.sender.button_payload(button, message=message, channel=INCIDENTS, response="b2")
    assert env.sender.interactive(first).status_code == 200
    assert env.response("b1")["text"] == "Incident #1 closed."
    assert env.sender.interactive(second).status_code == 200
    again = env.response("b2")
    assert again["response_type"] == "ephemeral" and "already closed" in again["text"]
    assert [e.kind for e in env.timeline(1)].count("close") == 1


def test_user_errors_are_answered_privately_with_what_to_do(env):
    cases = {
        "bogus things": "unknown command `bogus`",
        "metrics": "which route?",
        "metrics support.reply forever": "is not a window",
        "metrics suport.reply": "Did you mean `support.reply`?",
        "close #99": "there is no incident #99",
    }
    for n, (text, expected) in enumerate(cases.items()):
        env.sender.command(text, response=f"e{n}")
        answer = env.response(f"e{n}")
        assert answer["response_type"] == "ephemeral" and expected in answer["text"], answer
    env.sender.command("status hello?", channel="C0ELSEWHERE", response="none")
    assert "no open incident in this channel" in env.response("none")["text"]
    env.sender.command("help", response="help")
    assert "/llm-incident start" in texts(env.response("help"))


def test_an_internal_failure_answers_with_a_reference_not_a_trace(env, monkeypatch, caplog):
    def broken(self, text, ctx):
        raise RuntimeError("database exploded")

    monkeypatch.setattr(CommandCore, "run", broken)
    env.sender.command("list", response="boom")
    answer = env.response("boom")["text"]
    assert "Something went wrong on our side" in answer and "Traceback" not in answer
    ref = answer.split("reference `")[1].split("`")[0]
    assert f"Slack request failed (ref {ref})" in caplog.text and "database exploded" in caplog.text
