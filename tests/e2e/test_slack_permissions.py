"""Who may do what from Slack (buttons, forms, commands), and closed incidents are read-only."""

from __future__ import annotations

import pytest

from llm_incident.controls.service import control_history, get_controls
from tests.e2e.slackenv import INCIDENTS, seed, slack_server
from tests.e2e.test_slack_controls import started
from tests.fakeslack import FakeSlack


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def button(message, label):
    return next(e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
                if e["text"]["text"] == label)


def press(env, message, label, *, root, user="U0ALICE", response="button", answer=True):
    shown = {"ts": message["ts"], "text": message["text"], "blocks": message["blocks"],
             **({"thread_ts": root["ts"]} if message["ts"] != root["ts"] else {})}
    env.sender.interactive(env.sender.button_payload(button(message, label), message=shown,
                                                     channel=INCIDENTS, user=user,
                                                     response=response))
    return env.response(response) if answer else None


def history(db):
    with db.read() as session:
        return [(c.outcome, c.actor) for c in control_history(session, route="support.reply")]


def test_non_responders_are_refused_on_buttons_forms_and_close(db, slack):
    seed(db)
    with slack_server(db, slack, responders=["U0CAROL"]) as env:
        root, panel = started(env)
        killed = press(env, panel, "Kill route", root=root, user="U0BOB", response="kill")
        form = press(env, panel, "Clamp tokens…", root=root, user="U0BOB", response="form")
        close = press(env, root, "Close incident", root=root, user="U0BOB", response="close")
        assert env.slack.calls("views.open") == []
        press(env, panel, "Clamp tokens…", root=root, user="U0CAROL", response="carol",
              answer=False)
        view = env.slack.wait_for(lambda: env.slack.calls("views.open"))[0].args["view"]
        env.sender.interactive(env.sender.submission_payload(
            view, {"value": "800", "duration": "1h"}, user="U0BOB"))
        submitted = env.response("carol")
        timeline = env.timeline(1)
    for answer in (killed, form, submitted):
        assert answer["response_type"] == "ephemeral"
        assert "only responders (LLM_INCIDENT_RESPONDERS) may change route controls" in \
            answer["text"]
    assert "only responders (LLM_INCIDENT_RESPONDERS) may close incidents" in close["text"]
    assert history(db) == [("refused", "U0BOB")] * 3
    assert [(e.kind, e.actor) for e in timeline][-1] == ("refused", "U0BOB")
    assert env.incidents()[0].status == "open"
    with db.read() as session:
        assert get_controls(session, "support.reply").version == 0


def test_a_closed_incidents_buttons_change_nothing_but_the_postmortem_restore_acts(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        root, panel = started(env)
        env.sender.command("kill support.reply", channel=INCIDENTS, response="kill")
        assert env.response("kill")["text"].startswith("Done:")
        env.sender.command("close fixed", channel=INCIDENTS, response="close")
        assert env.response("close")["text"] == "Incident #1 closed."
        stale = press(env, panel, "Kill route", root=root, response="stale")
        active = env.slack.wait_for(lambda: [p for p in env.slack.posts(thread_ts=root["ts"])
                                             if "mitigations are still active" in p["text"]])[0]
        env.slack.wait_for(env.outbox_settled)
        updates = len(env.slack.calls("chat.update"))
        restored = press(env, active, "Restore support.reply", root=root, response="restore")
        env.slack.wait_for(env.outbox_settled)
        assert len(env.slack.calls("chat.update")) == updates
    assert stale["response_type"] == "ephemeral"
    assert stale["text"] == ("⚠️ incident #1 is closed; use `/llm-incident kill support.reply` "
                             "to act now (nothing was changed)")
    assert restored["response_type"] == "ephemeral"
    assert restored["text"].startswith("Done: <@U0ALICE> restored `support.reply`")
    assert "change outside an incident (incident #1 is closed)" in restored["text"]
    with db.read() as session:
        changes = control_history(session, route="support.reply")
        assert [(c.outcome, c.incident) for c in changes] == [("applied", None), ("applied", 1)]
        assert get_controls(session, "support.reply").enabled is True


def test_an_app_home_press_goes_through_the_same_rule(db, slack):
    seed(db)
    with slack_server(db, slack, responders=["U0CAROL"]) as env:
        started(env)
        payload = env.sender.button_payload({"action_id": "llm_incident.run.0",
                                             "text": {"type": "plain_text", "text": "Kill"},
                                             "value": "kill support.reply @v0"},
                                            message={"ts": "1.1"}, user="U0BOB")
        for key in ("message", "channel", "response_url"):
            payload.pop(key)
        payload["container"] = {"type": "view", "view_id": "V0HOME"}
        payload["view"] = {"id": "V0HOME", "type": "home", "blocks": []}
        env.sender.interactive(payload)
        env.slack.wait_for(lambda: history(db), what="the refusal audited")
    assert history(db) == [("refused", "U0BOB")]


def test_the_audit_names_slack_users_and_shows_close_refusal_and_reopen(db, slack):
    import httpx

    from tests.support import TEST_KEY

    seed(db)
    with slack_server(db, slack, responders=["U0ALICE"]) as env:
        root, panel = started(env)
        press(env, panel, "Kill route", root=root, response="kill")
        env.sender.command("close fixed", channel=INCIDENTS, user="U0BOB", response="bob")
        assert "may close incidents" in env.response("bob")["text"]
        env.sender.command("close fixed", channel=INCIDENTS, response="close")
        assert env.response("close")["text"] == "Incident #1 closed."
        env.sender.command("reopen #1 came back", channel=INCIDENTS, response="reopen")
        assert env.response("reopen")["text"] == "Incident #1 reopened (open)."
        env.sender.command("restore support.reply", channel=INCIDENTS, response="again")
        again = env.response("again")
        audit = httpx.get(env.url + "/v1/audit", headers={"Authorization": f"Bearer {TEST_KEY}"},
                          timeout=10).json()
    assert again["text"].startswith("Done: <@U0ALICE> restored `support.reply`"), again
    assert [(e["actor"], e["actor_name"], e["outcome"], e["incident"]) for e in audit["entries"]] == [
        ("U0ALICE", "u0alice", "applied", 1), ("U0ALICE", "u0alice", "applied", 1)]
    assert [(a["kind"], a["actor"], a["actor_name"]) for a in audit["incident_actions"]] == [
        ("reopen", "U0ALICE", "u0alice"), ("close", "U0ALICE", "u0alice"),
        ("refused", "U0BOB", "u0bob"), ("start", "U0ALICE", None)]
    assert env.incidents()[0].status == "open"
