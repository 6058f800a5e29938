"""Mitigations from Slack: panels updated in place, the card and Home tab, responders only."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.slackenv import INCIDENTS, WAR_ROOM, opening_thread, seed, slack_server, texts
from tests.fakeslack import FakeSlack
from tests.support import TEST_KEY


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def started(env):
    env.sender.command("start support.reply cost tokens exploding", channel=WAR_ROOM,
                       response="start")
    env.response("start")
    root = env.root(INCIDENTS)
    thread = env.thread(root, opening_thread(routes=1))
    panel = next(p for p in thread if p["text"] == "Mitigations for support.reply")
    env.slack.wait_for(env.outbox_settled, what="opening posts delivered")
    return root, panel


def test_a_kill_button_updates_the_panel_in_place_the_card_and_the_home_tab(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        root, panel = started(env)
        kill = next(e for b in panel["blocks"] if b["type"] == "actions" for e in b["elements"]
                    if e["text"]["text"] == "Kill route")
        assert kill["value"] == "kill support.reply @v0" and kill["confirm"]["style"] == "danger"
        message = {"ts": panel["ts"], "thread_ts": root["ts"], "text": panel["text"],
                   "blocks": panel["blocks"]}
        env.sender.interactive(env.sender.button_payload(kill, message=message, channel=INCIDENTS,
                                                         response="kill"))
        assert "killed `support.reply`" in env.response("kill")["text"]

        def panel_updated():
            return [c.args for c in env.slack.calls("chat.update") if c.args["ts"] == panel["ts"]]

        [update] = env.slack.wait_for(panel_updated, what="the panel updated in place")
        assert "⛔ killed" in texts(update)
        assert any(e["text"]["text"] == "Restore route" for b in update["blocks"]
                   if b["type"] == "actions" for e in b["elements"])

        def card_shows_kill():
            cards = [c.args for c in env.slack.calls("chat.update") if c.args["ts"] == root["ts"]]
            return cards and "support.reply: killed" in texts(cards[-1])

        env.slack.wait_for(card_shows_kill, what="the card lists the mitigation")
        line = env.slack.wait_for(lambda: [p for p in env.slack.posts(thread_ts=root["ts"])
                                           if "killed `support.reply`" in p["text"]])
        assert line and len(env.slack.posts(thread_ts=root["ts"])) == opening_thread(1) + 1
        env.slack.wait_for(env.outbox_settled)
        env.sender.event({"type": "app_home_opened", "user": "U0BOB", "tab": "home",
                          "event_ts": "1.9"})
        home = env.slack.wait_for(lambda: env.slack.calls("views.publish"))[0].args["view"]
    assert "*Routes with active mitigations*\n• `support.reply`: killed" in texts(home)
    assert [e.kind for e in env.timeline(1)] == ["start", "triage", "control"]


def test_only_responders_change_controls_when_responders_are_set(db, slack):
    seed(db)
    slack.usergroups["S0ONCALL"] = ["U0ALICE"]
    with slack_server(db, slack, responders=["S0ONCALL", "U0CAROL"]) as env:
        started(env)
        env.sender.command("clamp support.reply 800", channel=WAR_ROOM, user="U0BOB",
                           response="bob")
        refused = env.response("bob")
        env.sender.command("clamp support.reply 800", channel=WAR_ROOM, user="U0ALICE",
                           response="alice")
        allowed = env.response("alice")
    assert refused["response_type"] == "ephemeral"
    assert "only responders (LLM_INCIDENT_RESPONDERS)" in refused["text"]
    assert "clamped `support.reply` to 800 output tokens" in allowed["text"]
    assert slack.calls("usergroups.users.list")[0].args["usergroup"] == "S0ONCALL"


def test_a_panel_form_button_opens_a_form_whose_submission_applies_the_change(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        root, panel = started(env)
        clamp = next(e for b in panel["blocks"] if b["type"] == "actions" for e in b["elements"]
                     if e["text"]["text"] == "Clamp tokens…")
        message = {"ts": panel["ts"], "thread_ts": root["ts"], "text": panel["text"],
                   "blocks": panel["blocks"]}
        env.sender.interactive(env.sender.button_payload(clamp, message=message,
                                                         channel=INCIDENTS, response="clamp"))
        view = env.slack.wait_for(lambda: env.slack.calls("views.open"))[0].args["view"]
        assert view["callback_id"] == "llm_incident.modal.control"
        assert not any(b["block_id"] == "llm_incident_channel" for b in view["blocks"])
        assert f'"thread_ts":"{root["ts"]}"' in view["private_metadata"]
        env.sender.interactive(env.sender.submission_payload(view, {"value": "800",
                                                                    "duration": "1h"}))
        answer = env.response("clamp")
    assert "clamped `support.reply` to 800 output tokens" in answer["text"]
    assert [e.kind for e in env.timeline(1)] == ["start", "triage", "control"]


def test_every_control_verb_through_slack_and_the_control_plane(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        started(env)
        steps = [
            ("kill support.reply", {"enabled": False}),
            ("clamp support.reply 512 for 2h", {"max_tokens": 512}),
            ("model support.reply gpt-4o-mini", {"model": "gpt-4o-mini"}),
            ("provider support.reply azure-openai", {"provider": "azure-openai"}),
            ("retries support.reply 0", {"retry_cap": 0}),
            ("restore support.reply", {"enabled": True, "max_tokens": None, "model": None,
                                       "provider": None, "retry_cap": None}),
        ]
        headers = {"Authorization": f"Bearer {TEST_KEY}"}
        for n, (text, expected) in enumerate(steps):
            env.sender.command(text, channel=INCIDENTS, response=f"step{n}")
            assert env.response(f"step{n}")["text"].startswith("Done:"), text
            state = httpx.get(f"{env.url}/v1/routes/support.reply/controls", headers=headers).json()
            assert {k: state[k] for k in expected} == expected, text
            assert state["version"] == n + 1
        kinds = [e.kind for e in env.timeline(1)]
    assert kinds == ["start", "triage"] + ["control"] * len(steps)


def test_double_click_on_kill_applies_once_and_posts_once(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        root, panel = started(env)
        kill = next(e for b in panel["blocks"] if b["type"] == "actions" for e in b["elements"]
                    if e["text"]["text"] == "Kill route")
        message = {"ts": panel["ts"], "thread_ts": root["ts"], "text": panel["text"],
                   "blocks": panel["blocks"]}
        for name in ("first", "second"):
            env.sender.interactive(env.sender.button_payload(kill, message=message,
                                                             channel=INCIDENTS, response=name))
        answers = sorted(env.response(n)["text"][:12] for n in ("first", "second"))
        env.slack.wait_for(env.outbox_settled)
        lines = [p for p in env.slack.posts(thread_ts=root["ts"])
                 if "killed `support.reply`" in p["text"]]
    assert answers == ["Done: <@U0AL", "Not applied:"]
    assert len(lines) == 1
    assert [e.kind for e in env.timeline(1)] == ["start", "triage", "control"]
