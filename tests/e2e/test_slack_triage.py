"""The Triage message through the real Bolt app and WebClient against the fake Slack: posted
right after the runbook with the runbook answered, a suggestion button that applies its number,
redrawn in place (chat.update, no new post) by the scheduler job, inert once the incident is
closed. Every payload is checked against slack_sdk's Block Kit models by the fake."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from llm_incident.controls.service import get_controls
from llm_incident.demo import seed_demo
from llm_incident.scheduler.context import JobContext
from llm_incident.scheduler.triage_refresh import refresh_triage
from tests.e2e.slackenv import INCIDENTS, WAR_ROOM, opening_thread, slack_server, texts
from tests.e2e.test_slack_permissions import press
from tests.fakeslack import FakeSlack

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def test_triage_is_posted_applied_redrawn_in_place_and_inert_after_close(db, slack):
    with db.write() as session:
        seed_demo(session, "token-explosion", now=NOW)
    with slack_server(db, slack, clock=lambda: NOW) as env:
        env.sender.command("start support.reply cost tokens exploding", channel=WAR_ROOM,
                           response="start")
        started = env.response("start")["text"]
        root = env.root(INCIDENTS)
        thread = env.thread(root, opening_thread(routes=1))
        env.slack.wait_for(env.outbox_settled, what="opening posts delivered")
        runbook = next(p for p in thread if p["text"].startswith("LLM Incident Runbook"))
        triage = thread[thread.index(runbook) + 1]
        assert triage["text"] == "Triage for incident #1"
        clamp = next(e["text"]["text"] for b in triage["blocks"] if b["type"] == "actions"
                     for e in b["elements"] if e["text"]["text"].startswith("Clamp"))
        clamped = press(env, triage, clamp, root=root, response="clamp")
        jc = JobContext(db=db, delivery=env.app.state.slack.delivery)
        assert refresh_triage(jc, NOW + timedelta(minutes=1)) == [1]
        env.slack.wait_for(env.outbox_settled, what="redraw delivered")
        updates = [c.args for c in env.slack.calls("chat.update") if c.args["ts"] == triage["ts"]]
        posts = len(env.slack.posts(thread_ts=root["ts"]))
        env.sender.command("close clamped", channel=INCIDENTS, response="close")
        env.response("close")
        stale = press(env, triage, clamp, root=root, response="stale")
    assert "It began" in started and "before it was declared" in started
    assert "support.reply.main v42" in texts(runbook) and "_to fill_" not in texts(runbook).split("Current")[0]
    assert "Likely cause: prompt change on support.reply" in texts(triage)
    value = int(clamp.rsplit(" ", 1)[-1])
    assert clamped["text"].startswith(f"Done: <@U0ALICE> clamped `support.reply` to {value:,}")
    with db.read() as session:
        assert get_controls(session, "support.reply").max_tokens == value
    assert updates and "updated" in texts(updates[-1])
    assert posts == opening_thread(routes=1) + 1  # the clamp's line; the redraw posted nothing
    assert stale["text"].startswith("⚠️ incident #1 is closed; use `/llm-incident clamp")


def test_a_huge_messy_change_description_still_gives_a_valid_triage_message(db, slack):
    from llm_incident.changes import ChangeIn, ChangeKind, record_change

    text = ("prompt v42 <script>&amp; 🔥 " * 400)[:10_000]
    with db.write() as session:
        seed_demo(session, "token-explosion", now=NOW)
        record_change(session, ChangeIn(route="support.reply", kind=ChangeKind.prompt,
                                        description=text, ref="support.reply.main v42",
                                        ts=NOW - timedelta(minutes=27)), now=NOW)
    with slack_server(db, slack, clock=lambda: NOW) as env:
        env.sender.command("start support.reply cost tokens exploding", channel=WAR_ROOM,
                           response="start")
        root = env.root(INCIDENTS)
        thread = env.thread(root, opening_thread(routes=1))
        env.slack.wait_for(env.outbox_settled, what="opening posts delivered")
        statuses = {r.status for r in env.outbox()}
    assert any(p["text"] == "Triage for incident #1" for p in thread)
    assert statuses == {"sent"} and not slack.invalid  # every post valid Block Kit, delivered
    shown = "".join(texts(p) for p in thread)
    assert "&lt;script&gt;" in shown and "<script>" not in shown
