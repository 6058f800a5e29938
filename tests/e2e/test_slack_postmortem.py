"""The postmortem at close, through the running server and the fake Slack: the summary post, the
still-active mitigations with Restore buttons, the uploaded Markdown and charts, the canvas (or
its silent fallback), and a Slack outage during close that delays but does not lose it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from llm_incident.events.models import Event
from llm_incident.incidents.models import Incident
from llm_incident.incidents.postmortem import compile_postmortem

from llm_incident.incidents.runbook import EVIDENCE, FOLLOW_UPS, SUMMARY, TRIAGE
from tests.e2e.slackenv import INCIDENTS, WAR_ROOM, opening_thread, seed, slack_server, texts
from tests.fakeslack import FakeSlack

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def say(env, text: str, name: str) -> dict:
    env.sender.command(text, channel=INCIDENTS, response=name)
    return env.response(name)


def run_incident(env) -> dict:
    """start → kill → clamp → attach with labels → status; returns the root post."""
    env.sender.command("start support.reply cost tokens exploding", channel=WAR_ROOM,
                       response="start")
    env.response("start")
    root = env.root(INCIDENTS)
    env.thread(root, opening_thread(routes=1))
    backdate(env, minutes=30)
    assert "killed" in say(env, "kill support.reply", "kill")["text"]
    assert "800" in say(env, "clamp search.summarize 800", "clamp")["text"]
    say(env, "attach seed-sr-100 seed-sr-110 bad loops on the disclaimer", "bad")
    say(env, "attach seed-sr-5 good fine", "good")
    say(env, "status rolling back prompt v42", "status")
    env.slack.wait_for(env.outbox_settled, what="posts before the close delivered")
    return root


def backdate(env, *, minutes: int) -> None:
    """Pretend the incident started `minutes` ago: the seeded traffic got longer answers 30 min
    ago, so baseline (60 → 30 min ago) and during (30 min ago → the kill) differ."""
    with env.db.write() as session:
        incident = session.exec(select(Incident).where(Incident.number == 1)).one()
        incident.started_at -= timedelta(minutes=minutes)
        session.add(incident)


def reference_calls(db, route: str) -> tuple[int, int]:
    """Calls of `route` in the baseline and during windows, counted straight from the events."""
    with db.read() as session:
        pm = compile_postmortem(session, 1, now=datetime.now(timezone.utc))
        stamps = [ts.replace(tzinfo=ts.tzinfo or timezone.utc) for ts in session.exec(
            select(Event.ts).where(Event.route == route))]
    return tuple(sum(p.start <= ts < p.end for ts in stamps) for p in pm.phases[:2])


def close(env) -> None:
    assert say(env, "close prompt v42 rolled back", "close")["text"] == "Incident #1 closed."


def files_row(env):
    return next(r for r in env.outbox() if r.key == "incident:1:postmortem-files")


def test_close_posts_the_postmortem_restore_buttons_files_and_canvas(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        root = run_incident(env)
        close(env)
        uploads = env.slack.wait_for(lambda: len(slack.uploads()) >= 3 and slack.uploads(),
                                     what="the Markdown and two charts")
        env.slack.wait_for(lambda: slack.calls("canvases.create"), what="the canvas")
        env.slack.wait_for(env.outbox_settled, what="the close delivered")
        posts = slack.posts(thread_ts=root["ts"])
        row = files_row(env)

    summary = next(p for p in posts if p["text"] == "Postmortem draft — incident #1")
    body = texts(summary)
    for part in ("Window", "Time to mitigate", "support.reply: before / during / after",
                 "search.summarize: before / during / after", "p95 tokens_out", "flagged rate",
                 "3 event(s) attached: 2 bad, 1 good, 0 unlabelled", "Follow-ups",
                 "prompt v42 rolled back", "llm-incident postmortem 1"):
        assert part in body, part
    assert len(summary["blocks"]) <= 50
    # the seed: support.reply answered 300 tokens before, 2,400 during; search.summarize 120
    support = next(b["text"]["text"] for b in summary["blocks"]
                   if "support.reply: before" in (b.get("text") or {}).get("text", ""))
    assert re.search(r"p95 tokens_out\s+300\s+2,400\s+8\.0×", support), support
    before, during = reference_calls(db, "support.reply")
    assert re.search(rf"calls\s+{before}\s+{during}\s", support), (before, during, support)
    assert "Time to mitigate*\n30m" in body
    assert "killed `support.reply`" in body and "clamped max_tokens to 800 on" in body

    active = next(p for p in posts if "mitigations are still active" in p["text"])
    assert "`support.reply`: killed" in texts(active)
    assert "`search.summarize`: max_tokens clamped to 800" in texts(active)
    buttons = [e for b in active["blocks"] if b["type"] == "actions" for e in b["elements"]]
    values = sorted(b["value"] for b in buttons)
    assert [re.sub(r"@v\d+", "@vN", v) for v in values] == [
        "restore search.summarize @vN after-close", "restore support.reply @vN after-close"]
    assert all(b["confirm"]["confirm"]["text"] == "Restore" for b in buttons)

    by_name = {u["filename"]: u for u in uploads}
    assert set(by_name) == {"postmortem-incident-1.md", "incident-1-support.reply.png",
                            "incident-1-search.summarize.png"}
    assert all(u["thread_ts"] == root["ts"] and u["channel"] == INCIDENTS for u in uploads)
    markdown = by_name["postmortem-incident-1.md"]["data"].decode()
    for heading in (SUMMARY, TRIAGE, EVIDENCE, FOLLOW_UPS):
        assert f"## {heading}" in markdown, heading
    for fact in ("incident #1", "support.reply", "search.summarize", "seed-sr-100",
                 "rolling back prompt v42", "prompt v42 rolled back", "800"):
        assert fact in markdown, fact
    for name in ("incident-1-support.reply.png", "incident-1-search.summarize.png"):
        png = by_name[name]["data"]
        assert png.startswith(PNG_MAGIC) and len(png) > 5_000
    [canvas] = slack.calls("canvases.create")
    assert canvas.args["channel_id"] == INCIDENTS
    assert canvas.args["document_content"]["markdown"] == markdown
    assert row.status == "sent" and row.payload["canvas"].startswith("F")
    assert len(slack.calls("files.getUploadURLExternal", ok_only=False)) == 3


def test_the_close_button_posts_it_too_and_a_refused_canvas_falls_back_to_the_file(
        db, slack, caplog):
    seed(db)
    slack.canvases_allowed = False
    with slack_server(db, slack) as env:
        root = run_incident(env)
        button = next(e for b in root["blocks"] if b["type"] == "actions"
                      for e in b["elements"] if e["text"]["text"] == "Close incident")
        message = {"ts": root["ts"], "text": root["text"], "blocks": root["blocks"]}
        env.sender.interactive(env.sender.button_payload(button, message=message,
                                                         channel=INCIDENTS, response="close"))
        assert env.response("close")["text"] == "Incident #1 closed."
        env.slack.wait_for(lambda: slack.calls("canvases.create"), what="the canvas attempt")
        env.slack.wait_for(env.outbox_settled, what="the close delivered")
        row = files_row(env)
    assert row.status == "sent" and row.last_error is None
    assert row.payload["canvas"] == "refused: team_tier_cannot_create_channel_canvases"
    assert "postmortem-incident-1.md" in {u["filename"] for u in slack.uploads()}
    assert "SLACK MESSAGE NOT DELIVERED" not in caplog.text


def test_a_slack_outage_during_close_delays_but_does_not_lose_the_postmortem(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        root = run_incident(env)
        slack.fail("chat.postMessage", times=1, status=429, retry_after=1)
        slack.fail("files.getUploadURLExternal", times=2, status=500)
        slack.fail("canvases.create", times=1, status=503)  # after the uploads: retried alone
        close(env)
        env.slack.wait_for(lambda: slack.calls("canvases.create"), timeout=30,
                           what="the canvas after the outage")
        env.slack.wait_for(env.outbox_settled, timeout=30, what="the close delivered")
        row = files_row(env)
        posts = slack.posts(thread_ts=root["ts"])
    assert any(p["text"] == "Postmortem draft — incident #1" for p in posts)
    assert [c.status for c in slack.calls("chat.postMessage", ok_only=False)].count(429) == 1
    failed = [c for c in slack.calls("files.getUploadURLExternal", ok_only=False) if not c.ok]
    assert len(failed) == 2
    names = [u["filename"] for u in slack.uploads()]
    assert sorted(names) == sorted(set(names)) and len(names) == 3  # each file exactly once
    assert len(slack.calls("files.getUploadURLExternal")) == 3  # no re-upload for the canvas retry
    assert len(slack.calls("canvases.create")) == 1
    assert row.status == "sent" and row.attempts >= 3
