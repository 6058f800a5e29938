"""Bad days, through the real signed endpoint: nothing acked is lost, and a kill switch never
waits for Slack. SQLite and PostgreSQL."""

from __future__ import annotations

import signal
import threading
import time
from types import SimpleNamespace

import httpx
import pytest
from sqlmodel import select

from llm_incident.controls.service import get_controls
from llm_incident.incidents import service as incidents
from llm_incident.slack.models import InboxRequest, ReplyMessage
from tests.e2e.slackenv import (
    INCIDENTS,
    WAR_ROOM,
    SlackEnv,
    opening_thread,
    seed,
    slack_server,
    texts,
)
from tests.fakeslack import FakeSlack
from tests.serverprocess import start_server
from tests.slackpayloads import BOT_TOKEN, SECRET, SlackSender
from tests.support import TEST_KEY, free_port

OUTAGES = {"500": dict(mode="error", status=500), "429": dict(mode="error", status=429,
                                                               retry_after=30),
           "hang": dict(mode="hang")}


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def inbox_rows(db) -> list[InboxRequest]:
    with db.read() as session:
        return list(session.exec(select(InboxRequest).order_by(InboxRequest.id)))


def statuses(db, number: int = 1) -> list[str]:
    with db.read() as session:
        incident = incidents.get_incident(session, number)
        return [e.text for e in incidents.timeline(session, incident) if e.kind == "status"]


def killed(db, route: str) -> bool:
    with db.read() as session:
        return get_controls(session, route, "prod").enabled is False


def wait(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


def test_kill_9_right_after_the_acks_loses_nothing_and_runs_each_request_once(
        db, slack, tmp_path):
    seed(db)
    env = dict(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SECRET,
               SLACK_API_URL=slack.api_url, LLM_INCIDENT_INCIDENT_CHANNEL=INCIDENTS)
    port = free_port()
    server = start_server(tmp_path, db.url, port, api_key=TEST_KEY, **env)
    sender = SlackSender(server.url, slack.url)
    try:
        assert sender.command("start support.reply tokens exploding", channel=WAR_ROOM,
                              response="start").status_code == 200
        slack.wait_for(lambda: slack.responses("start"), what="the start answer")
        panel = slack.wait_for(lambda: next((p for p in slack.posts()
                                             if p["text"] == "Mitigations for support.reply"),
                                            None), what="the mitigation panel")
        kill = next(e for b in panel["blocks"] if b["type"] == "actions" for e in b["elements"]
                    if e["text"]["text"] == "Kill route")
        click = sender.button_payload(kill, message=panel, channel=INCIDENTS, response="click")
        sender.command("start", channel=WAR_ROOM, response="form")
        view = slack.wait_for(lambda: slack.calls("views.open"), what="the form")[0].args["view"]
        form = sender.submission_payload(view, {"symptom": "second one, from the form",
                                                "incident_class": "provider",
                                                "severity": "sev1"})
        texts_sent = [f"fault status {n}" for n in range(20)]
        acks: list[int] = []

        def send(n: int) -> None:
            acks.append(sender.command(f"status #1 {texts_sent[n]}", channel=WAR_ROOM,
                                       response=f"s{n}").status_code)

        threads = [threading.Thread(target=send, args=(n,)) for n in range(20)]
        threads.append(threading.Thread(target=lambda: acks.append(sender.command(
            "kill search.summarize", channel=INCIDENTS, response="kill").status_code)))
        threads.append(threading.Thread(target=lambda: acks.append(
            sender.interactive(click).status_code)))
        threads.append(threading.Thread(target=lambda: acks.append(
            sender.interactive(form).status_code)))
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        server.stop(signal.SIGKILL)  # right after the last ack
        assert acks == [200] * 23
        left = [r for r in inbox_rows(db) if r.status == "pending"]
        server = start_server(tmp_path, db.url, port, api_key=TEST_KEY, name="restart", **env)
        wait(lambda: all(r.status != "pending" for r in inbox_rows(db)), 60, "the inbox drained")
        assert sorted(statuses(db)) == sorted(texts_sent)  # each exactly once
        assert killed(db, "search.summarize") and killed(db, "support.reply")
        started = [i.symptom for i in SlackEnv.incidents(SimpleNamespace(db=db))]
        assert started == ["tokens exploding", "second one, from the form"]  # the form, once
        for n in range(20):
            slack.wait_for(lambda n=n: slack.responses(f"s{n}"), timeout=30, what=f"answer s{n}")
        assert "killed `search.summarize`" in slack.wait_for(
            lambda: slack.responses("kill"), timeout=30)[0]["text"]
        print(f"{len(left)} of 23 requests were still pending when the process was killed")
    finally:
        sender.close()
        server.stop(signal.SIGKILL)


@pytest.mark.parametrize("outage", list(OUTAGES))
def test_a_kill_click_behind_16_commands_lands_at_once_whatever_slack_does(db, slack, outage):
    seed(db)
    with slack_server(db, slack) as env:
        env.sender.command("start support.reply tokens exploding", channel=WAR_ROOM,
                           response="start")
        root = env.root(INCIDENTS)
        panel = next(p for p in env.thread(root, opening_thread(routes=1))
                     if p["text"] == "Mitigations for support.reply")
        env.slack.wait_for(env.outbox_settled, what="opening posts delivered")
        slack.outage(**OUTAGES[outage])
        for n in range(16):
            assert env.sender.command(f"status queued {n}", channel=INCIDENTS,
                                      response=f"q{n}").status_code == 200
        kill = next(e for b in panel["blocks"] if b["type"] == "actions" for e in b["elements"]
                    if e["text"]["text"] == "Kill route")
        message = {"ts": panel["ts"], "thread_ts": root["ts"], "text": panel["text"],
                   "blocks": panel["blocks"]}
        clicked = time.monotonic()
        response = env.sender.interactive(env.sender.button_payload(
            kill, message=message, channel=INCIDENTS, response="kill"))
        assert response.status_code == 200
        api = httpx.Client(base_url=env.url, headers={"Authorization": f"Bearer {TEST_KEY}"})
        wait(lambda: api.get("/v1/routes/support.reply/controls").json()["enabled"] is False,
             10, "the kill on the control plane")
        took = time.monotonic() - clicked
        wait(lambda: len(statuses(db)) == 16, 10, "the 16 statuses")
        slack.outage(None)
        assert "killed `support.reply`" in env.slack.wait_for(
            lambda: slack.responses("kill"), timeout=60)[0]["text"]
        for n in range(16):
            env.slack.wait_for(lambda n=n: slack.responses(f"q{n}"), timeout=60)
    print(f"kill visible {took * 1000:.0f} ms after the click with Slack {outage}")


@pytest.mark.parametrize("outage", list(OUTAGES))
def test_a_process_started_while_slack_is_down_acks_and_runs_every_request(db, slack, outage):
    seed(db)
    slack.outage(**OUTAGES[outage])
    with slack_server(db, slack) as env:
        started = time.monotonic()
        response = env.sender.command("start support.reply tokens exploding", channel=WAR_ROOM,
                                      response="start")
        ack_seconds = time.monotonic() - started
        assert response.status_code == 200 and response.text == "Starting the incident…"
        assert ack_seconds < 2.5, ack_seconds  # Slack's limit is 3 s
        wait(lambda: env.incidents(), 10, "the incident stored while Slack is down")
        slack.outage(None)
        answer = env.response("start")
        assert "Incident #1 started" in answer["text"]
        # a post tried during the outage waits out Slack's Retry-After (30 s) before it goes
        env.root(INCIDENTS, timeout=OUTAGES[outage].get("retry_after", 0) + 15)
    everything = str([c.args for c in slack.calls()]) + str(slack.responses())
    assert "reinstall" not in everything.lower()


def test_an_expired_response_url_falls_back_to_an_ephemeral_message(db, slack):
    seed(db)
    slack.expired_responses.add("late")
    with slack_server(db, slack) as env:
        env.sender.command("list", channel=WAR_ROOM, response="late")
        ephemeral = env.slack.wait_for(lambda: env.slack.calls("chat.postEphemeral"),
                                       what="the ephemeral fallback")[0].args
        assert ephemeral["channel"] == WAR_ROOM and ephemeral["user"] == "U0ALICE"
        assert "No open incidents" in texts(ephemeral)
    with db.read() as session:
        [row] = session.exec(select(ReplyMessage)).all()
    assert (row.status, row.via) == ("sent", "ephemeral")


def test_a_request_replayed_after_it_ran_is_acked_and_not_run_again(db, slack):
    seed(db)
    with slack_server(db, slack) as env:
        body = env.sender.command_body("status #1 once only", channel=WAR_ROOM, response="one")
        env.sender.command("start support.reply tokens exploding", channel=WAR_ROOM,
                           response="start")
        env.response("start")
        first = env.sender.send(body, "application/x-www-form-urlencoded")
        env.response("one")
        again = env.sender.send(body, "application/x-www-form-urlencoded",
                                headers={"X-Slack-Retry-Num": "1"})
        assert first.status_code == again.status_code == 200
        wait(lambda: all(r.status == "done" for r in inbox_rows(db)), 10, "inbox done")
    assert statuses(db) == ["once only"]
