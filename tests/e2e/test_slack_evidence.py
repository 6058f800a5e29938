"""Evidence from Slack: the message shortcut, `events` with buttons, `sample` labelling."""

from __future__ import annotations

import pytest

from llm_incident.evidence.service import list_evidence
from llm_incident.incidents import service as incidents
from llm_incident.events.ingest import ingest_events
from tests.e2e.slackenv import INCIDENTS, WAR_ROOM, opening_thread, seed, slack_server, texts
from tests.fakeslack import FakeSlack

SDK_ID = "3f2a9c0d4e5b6a7f8091a2b3c4d5e6f7"  # what our SDK writes (uuid4 hex)


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def start(env):
    env.sender.command("start support.reply quality odd answers", channel=WAR_ROOM,
                       response="start")
    env.response("start")
    root = env.root(INCIDENTS)
    env.thread(root, opening_thread(routes=1))
    env.slack.wait_for(env.outbox_settled, what="opening posts delivered")
    return root


def buttons(message):
    return [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def evidence(env, number=1):
    with env.db.read() as session:
        return {i.event_id: i for i in list_evidence(session, incidents.get_incident(session,
                                                                                        number))}


def test_shortcut_finds_event_ids_in_a_message_and_attaches_them(db, slack):
    seed(db)
    with db.write() as session:
        from datetime import datetime, timezone
        ingest_events(session, [{"event_id": SDK_ID, "route": "support.reply",
                                 "output_excerpt": "call me at +1 415 555 0100"}],
                      now=datetime.now(timezone.utc))
    with slack_server(db, slack) as env:
        start(env)
        env.sender.interactive(env.sender.shortcut_payload(
            f"customer says {SDK_ID} was rude :( also 00000000000000000000000000000000",
            channel=WAR_ROOM))
        opened = env.slack.wait_for(lambda: env.slack.calls("views.open"), what="the form")
        view = opened[-1].args["view"]
        rendered = str(view)
        assert SDK_ID in rendered and "#1 — odd answers" in rendered
        env.sender.interactive(env.sender.submission_payload(view, {
            "incident": "#1 — odd answers",
            "event_ids": f"{SDK_ID} 00000000000000000000000000000000",
            "label": "bad", "note": "rude to the customer"}))
        answer = env.slack.wait_for(lambda: [r for r in env.slack.responses()
                                             if "attached" in r.get("text", "")],
                                    what="the attach answer")[-1]
        assert "1 unknown" in answer["text"] and "+1 415" not in texts(answer)
        item = env.slack.wait_for(lambda: evidence(env).get(SDK_ID), what="evidence row")
        assert (item.label, item.note, item.labelled_by) == ("bad", "rude to the customer",
                                                              "U0ALICE")


def test_events_and_sample_labelling_update_progress_in_place(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        root = start(env)
        env.sender.command('events status = "flagged" limit 3', channel=INCIDENTS,
                           response="events")
        listing = env.response("events")
        assert [b["text"]["text"] for b in buttons(listing)][:2] == ["👍 Good", "👎 Bad"]
        env.sender.command("sample support.reply", channel=INCIDENTS, response="sample")
        assert "Posted 20 events" in env.response("sample")["text"]
        thread_before = opening_thread(1)
        posts = env.thread(root, thread_before + 21)[thread_before:]
        progress, first = posts[0], posts[1]
        assert "0/20 labelled, 0 bad" in progress["text"]
        assert len({p["ts"] for p in posts}) == 21
        bad = next(b for b in buttons(first) if b["text"]["text"] == "👎 Bad")
        msg = {"ts": first["ts"], "thread_ts": root["ts"], "text": first["text"],
               "blocks": first["blocks"]}
        env.sender.interactive(env.sender.button_payload(bad, message=msg, channel=INCIDENTS,
                                                         response="bad"))
        env.response("bad")

        def updated(ts):
            return [c.args for c in env.slack.calls("chat.update") if c.args["ts"] == ts]

        assert "1/20 labelled, 1 bad" in env.slack.wait_for(lambda: updated(progress["ts"]))[-1][
            "text"]
        assert "labelled *bad* by <@U0ALICE>" in texts(
            env.slack.wait_for(lambda: updated(first["ts"]))[-1])
        card = env.slack.wait_for(lambda: [u for u in updated(root["ts"])
                                           if "1 attached · 0 good · 1 bad" in texts(u)])
        assert card


def test_attach_by_command_known_unknown_and_relabel(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        start(env)
        env.sender.command("attach seed-sr-100 seed-sr-101 nope-1 bad loops on the disclaimer",
                           channel=INCIDENTS, response="attach")
        first = env.response("attach")
        assert "2 event(s) attached or updated, 1 unknown" in first["text"]
        assert "`nope-1`" in texts(first) and "*bad* — loops on the disclaimer" in texts(first)
        env.sender.command("attach seed-sr-100 good fine on a second look", channel=INCIDENTS,
                           response="relabel")
        env.response("relabel")
        item = evidence(env)["seed-sr-100"]
        assert (item.label, item.note) == ("good", "fine on a second look")
        lines = [e.text for e in env.timeline(1) if e.kind == "evidence"]
        assert "relabelled seed-sr-100 bad → good" in lines[-1]


def test_sample_and_events_with_a_filter_over_slack(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        root = start(env)
        env.sender.command("sample support.reply 4 tokens_out > 2000", channel=INCIDENTS,
                           response="sample")
        assert "Posted 4 events" in env.response("sample")["text"]
        posts = env.thread(root, opening_thread(1) + 5)[opening_thread(1):]
        assert all("→2400 tok" in texts(p) for p in posts[1:]), [texts(p) for p in posts[1:]]
        env.sender.command('events tokens_out > 2000 AND route = "support.reply" limit 2',
                           channel=INCIDENTS, response="events")
        listing = texts(env.response("events"))
        assert listing.count("→2400 tok") == 2 and "→300 tok" not in listing
