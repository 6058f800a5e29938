"""The outbox after a lost answer or a crash mid-call, pass by pass against the fake Slack: the
post or file that reached Slack is found and adopted, not sent twice; a lease is kept alive while
a delivery runs; a read Slack refuses falls back to posting."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from slack_sdk import WebClient

from llm_incident.commands.replies import Attachment, Post, Reply, Section, Target
from llm_incident.incidents import service as incidents
from llm_incident.incidents.service import StartRequest
from llm_incident.slack import outbox, outbox_recovery
from llm_incident.slack.outbox import SlackDelivery
from llm_incident.slack.outbox_worker import OutboxWorker
from tests.fakeslack import FakeSlack
from tests.integration.test_slack_outbox import NOW, Clock


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def clock():
    return Clock()


def client_for(slack: FakeSlack, timeout: int = 1) -> WebClient:
    return WebClient(token="xoxb-t", base_url=slack.api_url, retry_handlers=[], timeout=timeout)


@pytest.fixture
def worker(db, slack, clock):
    return OutboxWorker(db, client_for(slack), clock=clock, backoff_base=1.0)


def start(db, clock, *posts: Post) -> None:
    """Incident #1 in C1 with its root card, then `posts`."""
    with db.write() as session:
        incidents.start_incident(session, StartRequest(commander="U1", symptom="x",
                                                       channel_id="C1", origin_channel_id="C0"),
                                 now=NOW)
        SlackDelivery(clock=clock).enqueue(session, [
            Post(1, Target.root, Reply("card", (Section(text="card"),), ephemeral=False),
                 key="incident:1:card"), *posts])


def drain(worker, clock, passes: int = 20) -> None:
    for _ in range(passes):
        worker.run_once()
        heads = outbox.lane_heads(worker.db)
        if not heads:
            return
        clock.now = max(clock.now, min(h.next_attempt_at for h in heads))


def rows(db):
    from sqlmodel import select

    from llm_incident.slack.models import OutboxMessage

    with db.read() as session:
        return {r.key: r for r in session.exec(select(OutboxMessage))}


def test_every_post_carries_its_outbox_key_and_a_clean_run_reads_nothing_back(db, slack,
                                                                             worker, clock):
    start(db, clock, Post(1, Target.thread, Reply("first"), key="incident:1:first"))
    drain(worker, clock)
    assert [p["metadata"] for p in slack.posts()] == [
        outbox_recovery.tag("incident:1:card"), outbox_recovery.tag("incident:1:first")]
    assert not slack.calls("conversations.replies") and not slack.calls("conversations.history")


def test_a_post_whose_answer_was_lost_is_found_in_the_thread_not_posted_again(db, slack,
                                                                              worker, clock):
    start(db, clock, Post(1, Target.thread, Reply("first"), key="incident:1:first"),
          Post(1, Target.thread, Reply("second"), key="incident:1:second"))
    slack.hang("chat.postMessage", when=lambda args: args.get("text") == "first")
    drain(worker, clock)
    texts = [p["text"] for p in slack.posts()]
    assert texts == ["card", "first", "second"]
    [read] = slack.calls("conversations.replies")
    root = slack.posts()[0]["ts"]
    assert read.args["ts"] == root and read.args["include_all_metadata"] in ("1", "true", True)
    assert float(read.args["oldest"]) == pytest.approx(
        (NOW - outbox_recovery.PROBE_MARGIN).timestamp())
    stored = rows(db)
    assert stored["incident:1:first"].result_ts == slack.posts()[1]["ts"]
    assert {r.status for r in stored.values()} == {"sent"}


def test_a_root_posted_by_a_process_that_then_died_becomes_the_incident_thread(db, slack,
                                                                               worker, clock):
    start(db, clock, Post(1, Target.thread, Reply("first"), key="incident:1:first"))
    [head] = outbox.lane_heads(db)
    # the dying process: claims, posts (Slack has it), dies before storing the answer
    assert outbox.claim(db, head, until=clock() + worker.lease, now=clock())
    posted = client_for(slack).chat_postMessage(channel="C1", text="card",
                                                metadata=outbox_recovery.tag(head.key))
    assert worker.run_once() > 0 and len(slack.posts()) == 1  # leased: nobody posts yet
    clock.now += worker.lease
    drain(worker, clock)
    assert [p["text"] for p in slack.posts()] == ["card", "first"]
    assert slack.calls("conversations.history")[0].args["channel"] == "C1"
    with db.read() as session:
        assert incidents.get_incident(session, 1).thread_ts == posted["ts"]
    assert slack.posts()[1]["thread_ts"] == posted["ts"]


def test_a_definite_refusal_is_not_looked_for(db, slack, worker, clock):
    start(db, clock)
    slack.fail("chat.postMessage", times=1, status=429, retry_after=1)
    slack.fail("chat.postMessage", times=1, error="internal_error")
    drain(worker, clock)
    assert len(slack.posts()) == 1 and not slack.calls("conversations.history")
    assert "probe_from" not in rows(db)["incident:1:card"].payload


def test_a_read_slack_refuses_falls_back_to_posting_once_more(db, slack, worker, clock, caplog):
    start(db, clock)
    slack.hang("chat.postMessage")
    slack.fail("conversations.history", times=1, error="missing_scope")
    with caplog.at_level(logging.WARNING):
        drain(worker, clock)
    assert len(slack.posts()) == 2  # at least once: the old behaviour, loudly
    assert "cannot read C1 back from Slack (missing_scope)" in caplog.text


def test_a_read_that_fails_transiently_is_retried_before_posting(db, slack, worker, clock):
    start(db, clock)
    slack.hang("chat.postMessage")
    slack.fail("conversations.history", times=2, status=503)
    drain(worker, clock)
    assert len(slack.posts()) == 1 and len(slack.calls("conversations.history")) == 1


def files_post(names: list[str]) -> Post:
    return Post(1, Target.thread, Reply("Postmortem files"), key="incident:1:files",
                attachments=tuple(Attachment(n, n, "postmortem_markdown") for n in names))


def test_an_upload_completed_before_a_lost_answer_is_adopted_and_the_rest_sent(db, slack,
                                                                               worker, clock):
    start(db, clock, files_post(["a.md", "b.md"]))
    slack.hang("files.completeUploadExternal")
    drain(worker, clock)
    uploads = slack.uploads()
    assert sorted(u["filename"] for u in uploads) == ["a.md", "b.md"]
    assert [u["initial_comment"] for u in uploads] == ["Postmortem files", None]
    assert len(slack.calls("files.getUploadURLExternal")) == 2  # nothing uploaded twice
    row = rows(db)["incident:1:files"]
    assert row.status == "sent" and set(row.payload["uploaded"]) == {"a.md", "b.md"}
    assert row.payload["sharing"] == {}


def test_an_upload_that_never_completed_is_uploaded_again(db, slack, worker, clock):
    start(db, clock, files_post(["a.md"]))
    slack.fail("files.completeUploadExternal", times=1, status=502)
    drain(worker, clock)
    assert [u["filename"] for u in slack.uploads()] == ["a.md"]
    assert len(slack.calls("files.getUploadURLExternal")) == 2  # the first one was not shared
    assert len(slack.calls("conversations.replies")) == 1


def test_the_lease_is_kept_alive_while_a_delivery_runs(db, slack):
    """Real clock: lease 1 s, beats every 0.2 s, a post held 3 s (the client's timeout)."""
    lease = timedelta(seconds=1)
    first = OutboxWorker(db, client_for(slack, timeout=3), lease=lease, heartbeat_seconds=0.2)
    second = OutboxWorker(db, client_for(slack), lease=lease)
    start(db, outbox.utc_now)
    slack.hang("chat.postMessage")
    running = threading.Thread(target=first.run_once, daemon=True)
    running.start()
    slack.wait_for(lambda: slack.hanging("chat.postMessage"), what="the post held")
    [claimed] = outbox.lane_heads(db)
    claimed_until = claimed.next_attempt_at
    slack.wait_for(lambda: outbox.utc_now() > claimed_until + lease, timeout=3,
                   what="the first lease to be long over")
    second.run_once()
    assert len(slack.posts()) == 1  # still held by the first worker
    assert outbox.lane_heads(db)[0].next_attempt_at > outbox.utc_now()
    slack.release()
    running.join(10)
    slack.wait_for(lambda: second.run_once() is not None and rows(db)["incident:1:card"]
                   .status == "sent", timeout=10, what="the row adopted after the lost answer")
    assert len(slack.posts()) == 1
