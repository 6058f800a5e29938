"""Slack ↔ dashboard, through the real server and the fake Slack (both backends): the App Home's
routes overview, and links to the dashboard from the incident card (posted and updated), the
postmortem, `routes` and `metrics` when LLM_INCIDENT_DASHBOARD_URL is set — and none without."""

from __future__ import annotations

import pytest

from tests.e2e.slackenv import INCIDENTS, WAR_ROOM, opening_thread, seed, slack_server, texts
from tests.fakeslack import FakeSlack

DASH = "https://dash.example/llm"


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def say(env, text: str, name: str, channel: str = INCIDENTS) -> dict:
    env.sender.command(text, channel=channel, response=name)
    return env.response(name)


def home(env) -> str:
    env.sender.event({"type": "app_home_opened", "user": "U0BOB", "channel": "D0BOB",
                      "tab": "home", "event_ts": "1.2"})
    call = env.slack.wait_for(lambda: env.slack.calls("views.publish"), what="Home")[-1]
    return texts({"blocks": call.args["view"]["blocks"]})


def test_home_shows_the_routes_overview_with_dashboard_links(db, slack):
    seed(db)
    with slack_server(db, slack, dashboard_url=DASH + "/") as env:
        say(env, "start support.reply cost tokens exploding", "start", channel=WAR_ROOM)
        text = home(env)
    assert "*Routes over the last 1h*\n2 route(s)" in text
    lines = {li.split("|")[1].split(">")[0]: li for li in text.splitlines() if "/routes/" in li}
    assert set(lines) == {"support.reply", "search.summarize"}
    line = lines["support.reply"]
    assert line.startswith(f"⚠️ *<{DASH}/routes/support.reply?range=1h|support.reply>*")
    assert "p95 tokens_out ⚠️ 2,400 (+" in line and line.endswith("· #1")  # its open incident
    assert f"<{DASH}/incidents/1|dashboard>" in text
    assert not slack.invalid


def test_the_card_postmortem_routes_and_metrics_link_to_the_dashboard(db, slack):
    seed(db)
    with slack_server(db, slack, dashboard_url=DASH) as env:
        say(env, "start support.reply cost tokens exploding", "start", channel=WAR_ROOM)
        root = env.root(INCIDENTS)
        env.thread(root, opening_thread(routes=1))
        card_link = f"<{DASH}/incidents/1|Dashboard: timeline, evidence, charts>"
        assert card_link in texts(root)
        say(env, "status rolling back", "status")
        update = env.slack.wait_for(lambda: slack.calls("chat.update"), what="card update")[-1]
        assert card_link in texts(update.args)  # the re-rendered card keeps it
        routes = texts(say(env, "routes 24h", "routes"))
        assert f"<{DASH}/?range=24h|overview>" in routes
        assert f"<{DASH}/routes/support.reply?range=24h|support.reply>" in routes
        metrics = texts(say(env, "metrics support.reply 1h", "metrics"))
        assert f"<{DASH}/routes/support.reply?range=1h|this route in the dashboard>" in metrics
        say(env, "close rolled back", "close")
        summary = env.slack.wait_for(lambda: [p for p in slack.posts(thread_ts=root["ts"])
                                              if p["text"].startswith("Postmortem draft —")],
                                     what="the postmortem")[0]
    assert f"<{DASH}/incidents/1|The postmortem in the dashboard" in texts(summary)
    assert not slack.invalid


def test_no_dashboard_url_no_links(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        say(env, "start support.reply cost tokens exploding", "start", channel=WAR_ROOM)
        root = env.root(INCIDENTS)
        env.thread(root, opening_thread(routes=1))
        say(env, "status rolling back", "status")
        update = env.slack.wait_for(lambda: slack.calls("chat.update"), what="card update")[-1]
        answers = [texts(say(env, "routes", "routes")),
                   texts(say(env, "metrics support.reply 1h", "metrics")), home(env)]
    for text in [texts(root), texts(update.args), *answers]:
        assert "http" not in text and "Dashboard:" not in text, text
