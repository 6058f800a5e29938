"""Proof of application in Slack: after a kill clicked in an incident, its thread line is edited in place
(`chat.update` of the same message) as the real `Controls` clients connected to the server acknowledge it,
and the route's panel says the same; a client that went away is named as stale."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from llm_incident.scheduler.context import JobContext
from llm_incident.scheduler.control_proof import update_control_proofs
from llm_incident_client import Controls
from tests.e2e.slackenv import INCIDENTS, WAR_ROOM, opening_thread, seed, slack_server, texts
from tests.fakeslack import FakeSlack
from tests.support import TEST_KEY

ROUTE = "support.reply"


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def kill_from_the_panel(env):
    env.sender.command(f"start {ROUTE} cost tokens exploding", channel=WAR_ROOM, response="start")
    env.response("start")
    root = env.root(INCIDENTS)
    thread = env.thread(root, opening_thread(routes=1))
    panel = next(p for p in thread if p["text"] == f"Mitigations for {ROUTE}")
    env.slack.wait_for(env.outbox_settled, what="opening posts delivered")
    kill = next(e for b in panel["blocks"] if b["type"] == "actions" for e in b["elements"]
                if e["text"]["text"] == "Kill route")
    message = {"ts": panel["ts"], "thread_ts": root["ts"], "text": panel["text"], "blocks": panel["blocks"]}
    env.sender.interactive(env.sender.button_payload(kill, message=message, channel=INCIDENTS, response="kill"))
    assert "killed `support.reply`" in env.response("kill")["text"]
    line = env.slack.wait_for(lambda: next((p for p in env.slack.posts(thread_ts=root["ts"])
                                            if "killed `support.reply`" in p["text"]), None),
                              what="the kill's thread line")
    return root, panel, line


def updates_of(env, message: dict) -> list[dict]:
    return [c.args for c in env.slack.calls("chat.update") if c.args["ts"] == message["ts"]]


def test_the_kill_line_is_edited_in_place_as_every_instance_applies_it(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        clients = [Controls(env.url, TEST_KEY, wait=2, routes=[ROUTE], instance_name=f"web-{i}")
                   for i in range(3)]
        try:
            assert all(c.wait_ready(5) for c in clients)
            root, panel, line = kill_from_the_panel(env)
            jc = JobContext(db=db, delivery=env.app.state.slack.delivery)

            def line_says_all_applied():
                update_control_proofs(jc, datetime.now(timezone.utc))
                edits = updates_of(env, line)
                return edits if edits and "applied by 3/3 instances" in texts(edits[-1]) else None

            edits = env.slack.wait_for(line_says_all_applied, what="the line edited to 3/3 applied")
            assert all(not c.guard(ROUTE).allowed for c in clients)
        finally:
            for c in clients:
                c.close()
        final = texts(edits[-1])
        assert final.startswith(line["text"].split("\n")[0])  # the same line, the proof under it
        assert "✅ kill applied by 3/3 instances in " in final
        assert ("no upstream calls on `support.reply` since the kill" in final
                or "(0 upstream calls since)" in final)
        assert len([p for p in env.slack.posts(thread_ts=root["ts"]) if "killed" in p["text"]]) == 1
        panel_edits = env.slack.wait_for(lambda: [u for u in updates_of(env, panel)
                                                  if "applied by 3/3 instances" in texts(u)],
                                         what="the panel shows the proof")
        assert "⛔ killed" in texts(panel_edits[-1])


def test_an_instance_that_went_away_is_named_stale(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        live = Controls(env.url, TEST_KEY, wait=2, routes=[ROUTE], instance_name="web-1")
        gone = Controls(env.url, TEST_KEY, wait=2, routes=[ROUTE], instance_name="web-7")
        try:
            assert live.wait_ready(5) and gone.wait_ready(5)
            gone.close()  # web-7 stops long-polling before the kill
            root, panel, line = kill_from_the_panel(env)
            jc = JobContext(db=db, delivery=env.app.state.slack.delivery)

            def line_names_the_stale_one():
                later = datetime.now(timezone.utc) + timedelta(seconds=60)  # past web-7's wait + grace
                update_control_proofs(jc, later)
                edits = updates_of(env, line)
                return edits if edits and "1 of 2 applied; web-7" in texts(edits[-1]) else None

            edits = env.slack.wait_for(line_names_the_stale_one, what="the line names web-7 stale")
        finally:
            live.close()
    assert "⚠️ 1 of 2 applied; web-7 last seen " in texts(edits[-1])
