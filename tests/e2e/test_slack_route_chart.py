"""`/llm-incident metrics <route> chart [range]` through the real server and the fake Slack (both
backends): the PNG goes up through the files outbox to the channel (and thread) it was asked in,
exactly once even when Slack answers 500 / 429 mid-upload; messy route names, unknown routes and
wrong ranges get clear answers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from llm_incident.commands.route_chart import render_chart
from llm_incident.events.ingest import ingest_events
from tests.e2e.slackenv import WAR_ROOM, seed, slack_server, texts
from tests.fakeslack import FakeSlack

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MESSY = "support <b> & 'ünïcode' reply"
DASH = "https://dash.example"


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def chart_rows(env):
    return [r for r in env.outbox() if r.key.startswith("chart:")]


def ask(env, text: str, name: str, **kw) -> dict:
    env.sender.command(text, channel=WAR_ROOM, response=name, **kw)
    return env.response(name)


def test_chart_is_uploaded_once_to_the_channel_with_its_numbers_and_link(db, slack):
    seed(db)
    with slack_server(db, slack, dashboard_url=DASH) as env:
        answer = ask(env, "metrics support.reply chart 6h", "chart")
        assert "Charting `support.reply` over the last 6h" in answer["text"]
        upload = env.slack.wait_for(lambda: slack.uploads(), what="the chart")[0]
        env.slack.wait_for(env.outbox_settled, what="the chart delivered")
        (row,) = chart_rows(env)
        with db.read() as session:
            expected = render_chart(session, row.payload["attachments"][0]["args"])
    assert upload["filename"] == "support.reply-6h.png"
    assert upload["channel"] == WAR_ROOM and upload.get("thread_ts") is None
    assert upload["data"].startswith(PNG_MAGIC) and upload["data"] == expected
    assert upload["initial_comment"].startswith("support.reply over the last 6h: ")
    assert f"<{DASH}/routes/support.reply?range=6h|dashboard>" in upload["initial_comment"]
    assert row.status == "sent" and row.payload["attachments"][0]["args"]["range"] == "6h"
    assert len(slack.uploads()) == 1


def test_the_metrics_answers_chart_button_in_a_thread_posts_the_chart_in_that_thread(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        answer = ask(env, "metrics support.reply 24h", "metrics")
        button = next(e for b in answer["blocks"] if b["type"] == "actions"
                      for e in b["elements"])
        assert button["value"] == "metrics support.reply chart 24h"
        message = {"ts": "1700000000.000222", "thread_ts": "1700000000.000111",
                   "text": answer["text"], "blocks": answer["blocks"]}
        env.sender.interactive(env.sender.button_payload(button, message=message,
                                                         channel=WAR_ROOM))
        upload = env.slack.wait_for(lambda: slack.uploads(), what="the chart")[0]
    assert upload["thread_ts"] == "1700000000.000111" and upload["channel"] == WAR_ROOM
    assert upload["filename"] == "support.reply-24h.png"
    assert "dashboard" not in upload["initial_comment"]  # no URL set: no link


@pytest.mark.parametrize("failure", [dict(status=500), dict(status=429, retry_after=1)])
def test_slack_failing_mid_upload_delays_the_chart_but_never_loses_or_doubles_it(
        db, slack, failure):
    seed(db)
    with slack_server(db, slack) as env:
        slack.fail("files.getUploadURLExternal", times=1, **failure)
        slack.fail("files.completeUploadExternal", times=1, **failure)  # after the bytes went up
        ask(env, "metrics support.reply 24h chart", "chart")
        env.slack.wait_for(env.outbox_settled, timeout=30, what="the chart after the failures")
        (row,) = chart_rows(env)
    failed = [c for c in slack.calls(ok_only=False) if not c.ok]
    assert {c.method for c in failed} == {"files.getUploadURLExternal",
                                          "files.completeUploadExternal"}
    assert all(c.status == failure["status"] for c in failed)
    assert [u["filename"] for u in slack.uploads()] == ["support.reply-24h.png"]
    # a 5xx uses up an attempt each time; a 429 waits its Retry-After without using one
    assert row.status == "sent" and row.attempts == (3 if failure["status"] == 500 else 1)
    assert len(slack.calls("files.completeUploadExternal")) == 1


def test_messy_route_names_unknown_routes_and_wrong_ranges(db, slack):
    seed(db)
    now = datetime.now(timezone.utc)
    with db.write() as session:
        ingest_events(session, [{"event_id": f"m{i}", "route": MESSY, "tokens_out": 100 + i,
                                 "ts": (now - timedelta(minutes=i)).isoformat()}
                                for i in range(20)], now=now)
    with slack_server(db, slack, dashboard_url=DASH) as env:
        ok = ask(env, f"metrics {MESSY} chart 1h", "messy")
        upload = env.slack.wait_for(lambda: slack.uploads(), what="the messy chart")[0]
        unknown = ask(env, "metrics support.replly chart", "unknown")
        wrong = ask(env, "metrics support.reply chart 2h", "wrong")
        env.slack.wait_for(env.outbox_settled, what="settled")
    assert "Charting `support &lt;b&gt; &amp; 'ünïcode' reply` over the last 1h" in texts(ok)
    assert upload["filename"] == "support_b_n_code_reply-1h.png"
    assert upload["title"] == f"{MESSY} — last 1h"
    assert upload["initial_comment"].startswith(
        "support &lt;b&gt; &amp; 'ünïcode' reply over the last 1h: 20 calls")
    assert ("<https://dash.example/routes/support%20%3Cb%3E%20%26%20%27%C3%BCn%C3%AFcode%27"
            "%20reply?range=1h|dashboard>") in upload["initial_comment"]
    assert "no events have been seen for route `support.replly`" in texts(unknown)
    assert "Did you mean `support.reply`?" in texts(unknown)
    assert "`/llm-incident routes` lists the routes seen" in texts(unknown)
    assert "`2h` is not a range; use 1h, 6h, 24h, 7d, 30d" in texts(wrong)
    assert len(slack.uploads()) == 1
