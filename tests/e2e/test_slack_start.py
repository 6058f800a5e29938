"""Starting incidents from Slack, end to end: signed requests in, what the bot posted out."""

from __future__ import annotations

import pytest

from tests.e2e.slackenv import INCIDENTS, WAR_ROOM, opening_thread, seed, slack_server, texts
from tests.fakeslack import FakeSlack
from tests.slackpayloads import trigger_id

HEADINGS = ("*LLM Incident Runbook*", "*Summary*", "*Triage*", "*Mitigation options*",
            "*Evidence*", "*Follow-ups*")


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def test_start_with_arguments_posts_card_runbook_checklist_metrics_changes_and_a_link(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        resp = env.sender.command(
            "start support.reply search.summarize cost tokens exploding — “again” 🔥 <b>&",
            channel=WAR_ROOM, response="start")
        assert resp.status_code == 200 and resp.text == "Starting the incident…"  # the ack says it
        root = env.root(INCIDENTS)
        thread = env.thread(root, opening_thread(routes=2))
        origin = env.slack.wait_for(lambda: env.slack.posts(channel=WAR_ROOM), what="link")[0]
        answer = env.response("start")

    card = texts(root)
    assert "Incident #1 — tokens exploding — “again” 🔥 &lt;b&gt;&amp;" in card
    for field in ("*Status*\n🔴 open", "*Class*\ncost", "*Severity*\nsev2",
                  "*Commander*\n<@U0ALICE>", "*Routes*\n`support.reply`, `search.summarize`"):
        assert field in card
    close = next(b for b in root["blocks"] if b["type"] == "actions")["elements"][0]
    assert close["value"] == "close #1" and close["confirm"]["confirm"]["text"] == "Close it"

    assert [p["text"].split(" ")[0] for p in thread] == [
        "LLM", "Triage", "Triage", "Metrics", "Metrics", "Mitigations", "Mitigations", "Recent"]
    runbook, triage, checklist, snap1, snap2, _, _, changes = (texts(p) for p in thread)
    assert thread[1]["text"] == "Triage for incident #1" and "*Triage: support.reply*" in triage
    assert all(h in runbook for h in HEADINGS)
    assert "Affected routes: support.reply, search.summarize" in runbook
    assert "*Triage: Cost*" in checklist and "Top prompts by total cost" in checklist
    assert "Triage: Quality" not in checklist and "*First 10 minutes*" in checklist
    assert "`support.reply` — since the onset (" in snap1  # the seed's step, 30 min ago
    assert "`search.summarize` — since the onset (" in snap2  # the incident's onset, for each
    assert "p95 tokens" in snap1 and "```" in snap1
    assert "prompt v42: friendlier, longer answers" in changes and "PR-1234" in changes

    link = texts(origin)
    assert "Incident #1 started by <@U0ALICE>" in link
    assert f"<https://acme.slack.test/archives/{INCIDENTS}/p{root['ts'].replace('.', '')}" \
           f"|open the incident thread> in <#{INCIDENTS}>" in link
    assert answer["response_type"] == "ephemeral"
    assert "Incident #1 started in <#C0INC>; you are the commander" in answer["text"]

    [incident] = env.incidents()
    assert incident.symptom == "tokens exploding — “again” 🔥 <b>&"
    assert (incident.channel_id, incident.thread_ts) == (INCIDENTS, root["ts"])
    assert incident.commander == "U0ALICE" and incident.request_key.startswith("slack:command:")
    assert {r.status for r in env.outbox()} == {"sent"}


@pytest.mark.parametrize("permalink", [None, "", "not a link", "https://x.test/a|b>"])
def test_without_a_usable_permalink_the_origin_note_names_the_channel(db, slack, permalink):
    slack.permalink = permalink  # chat.getPermalink answers ok, without (a usable) permalink
    seed(db)
    with slack_server(db, slack) as env:
        env.sender.command("start support.reply tokens exploding", channel=WAR_ROOM,
                           response="start")
        origin = env.slack.wait_for(lambda: env.slack.posts(channel=WAR_ROOM), what="link")[0]
    link = texts(origin)
    assert "None" not in link and "open the incident thread" not in link
    assert f"the thread is in <#{INCIDENTS}>" in link


def test_start_in_the_current_channel_with_unknown_class_posts_all_four_checklists(db, slack):
    seed(db)
    with slack_server(db, slack, incident_channel=None) as env:
        env.sender.command("start support.reply answers look weird", channel=WAR_ROOM)
        root = env.root(WAR_ROOM)
        checklist = texts(env.thread(root, 3)[2])
        env.slack.wait_for(env.outbox_settled, what="outbox settled")
    for name in ("Quality", "Latency", "Cost", "Provider (429/5xx)"):
        assert f"*Triage: {name}*" in checklist
    assert not [p for p in env.slack.posts() if "follow it in its thread" in p["text"]]
    assert env.incidents()[0].incident_class == "unknown"


def test_start_without_arguments_opens_the_form_and_its_submission_starts_the_incident(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        trigger = trigger_id()
        env.sender.command("start", channel=WAR_ROOM, trigger=trigger, response="form")
        opened = env.slack.wait_for(lambda: env.slack.calls("views.open"), what="views.open")[0]
        assert opened.args["trigger_id"] == trigger
        view = opened.args["view"]
        assert view["callback_id"] == "llm_incident.modal.start"
        routes = next(b for b in view["blocks"] if b["block_id"] == "routes")
        assert [o["value"] for o in routes["element"]["options"]] == ["search.summarize",
                                                                       "support.reply"]
        payload = env.sender.submission_payload(view, {
            "symptom": "p95 latency doubled after the deploy 🐢 `v1.2.3`",
            "incident_class": "latency", "routes": ["support.reply"],
            "envs": "prod, eu", "customer_tiers": "enterprise", "severity": "sev1"})
        resp = env.sender.interactive(payload)
        assert resp.status_code == 200 and resp.text == ""
        root = env.root(INCIDENTS)
        checklist = texts(env.thread(root, 3)[2])
        answer = env.response("form")
    assert "*Triage: Latency*" in checklist and "Triage: Cost" not in checklist
    assert "*Severity*\nsev1" in texts(root)
    [incident] = env.incidents()
    assert (incident.incident_class, incident.severity, incident.routes) == (
        "latency", "sev1", ["support.reply"])
    assert incident.envs == ["prod", "eu"] and incident.customer_tiers == ["enterprise"]
    assert incident.symptom == "p95 latency doubled after the deploy 🐢 `v1.2.3`"
    assert incident.origin_channel_id == WAR_ROOM
    assert "Incident #1 started" in answer["text"]


def test_a_blank_symptom_is_refused_inside_the_form(db, slack):
    with slack_server(db, slack) as env:
        env.sender.command("start", channel=WAR_ROOM)
        view = env.slack.wait_for(lambda: env.slack.calls("views.open"))[0].args["view"]
        payload = env.sender.submission_payload(view, {"symptom": "   ",
                                                       "incident_class": "unknown",
                                                       "severity": "sev2"})
        resp = env.sender.interactive(payload)
    assert resp.status_code == 200
    assert resp.json() == {"response_action": "errors",
                           "errors": {"symptom": "Symptom is required."}}
    assert env.incidents() == []


def test_home_tab_lists_incidents_and_its_button_opens_the_form_with_a_channel_picker(db, slack):
    seed(db)
    with slack_server(db, slack, incident_channel=None) as env:
        env.sender.command("start support.reply quality it promised refunds", channel=WAR_ROOM)
        env.root(WAR_ROOM)
        env.sender.event({"type": "app_home_opened", "user": "U0BOB", "channel": "D0BOB",
                          "tab": "home", "event_ts": "1.2"})
        call = env.slack.wait_for(lambda: env.slack.calls("views.publish"))[0]
        published = call.args
        assert published["user_id"] == "U0BOB"
        home = texts({"blocks": published["view"]["blocks"]})
        assert "*#1* 🔴 open · quality · sev2 — it promised refunds" in home
        start = next(b for b in published["view"]["blocks"] if b["type"] == "actions")
        button = start["elements"][0]
        payload = env.sender.button_payload(button, message={"ts": "0"}, channel="")
        payload.pop("channel"), payload.pop("message"), payload.pop("response_url")
        payload["container"] = {"type": "view", "view_id": call.result["view"]["id"]}
        payload["view"] = call.result["view"]
        env.sender.interactive(payload)
        view = env.slack.wait_for(lambda: env.slack.calls("views.open"))[0].args["view"]
        assert view["blocks"][0]["block_id"] == "llm_incident_channel"
        env.sender.interactive(env.sender.submission_payload(view, {
            "llm_incident_channel": "C0PICK", "symptom": "from home", "incident_class": "cost",
            "severity": "sev3"}, user="U0BOB"))
        root = env.root("C0PICK")
        assert "Incident #2 — from home" in texts(root)
        # no response_url from the Home tab: the answer is an ephemeral message in that channel
        answer = env.slack.wait_for(lambda: env.slack.calls("chat.postEphemeral"))[0].args
    assert answer["user"] == "U0BOB" and answer["channel"] == "C0PICK"
    assert "Incident #2 started" in answer["text"]


def test_home_tab_ignores_the_messages_tab(db, slack):
    with slack_server(db, slack) as env:
        env.sender.event({"type": "app_home_opened", "user": "U0BOB", "channel": "D0BOB",
                          "tab": "messages", "event_ts": "1.2"})
        env.sender.event({"type": "app_home_opened", "user": "U0BOB", "channel": "D0BOB",
                          "tab": "home", "event_ts": "1.3"})
        env.slack.wait_for(lambda: env.slack.calls("views.publish"))
    assert len(env.slack.calls("views.publish")) == 1
