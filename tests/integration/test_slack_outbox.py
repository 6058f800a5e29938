"""The outbox against a fake Slack, pass by pass: idempotency, coalescing, claims, failures."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from slack_sdk import WebClient

from llm_incident.commands.replies import Post, Reply, Section, Target
from llm_incident.incidents import service as incidents
from llm_incident.incidents.service import StartRequest
from llm_incident.slack import outbox
from llm_incident.slack.dedupe import first_time, prune_seen
from llm_incident.slack.outbox import SlackDelivery
from llm_incident.slack.failures import retry_after as _retry_after
from llm_incident.slack.outbox_worker import OutboxWorker
from tests.fakeslack import FakeSlack

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def worker(db, slack, clock):
    client = WebClient(token="xoxb-t", base_url=slack.api_url, retry_handlers=[])
    return OutboxWorker(db, client, clock=clock, backoff_base=1.0, max_attempts=3)


def start(db, delivery, number_hint: str = "x", channel: str = "C1"):
    with db.write() as session:
        incident, _ = incidents.start_incident(
            session, StartRequest(commander="U1", symptom=number_hint, channel_id=channel,
                                  origin_channel_id="C0"), now=NOW)
        n = incident.number
        delivery.enqueue(session, [
            Post(n, Target.root, Reply("card", (Section(text="card"),), ephemeral=False),
                 key=f"incident:{n}:card"),
            Post(n, Target.thread, Reply("first"), key=f"incident:{n}:first"),
            Post(n, Target.thread, Reply("second"), key=f"incident:{n}:second"),
        ])
    return n


def drain(worker, clock, passes: int = 20) -> None:
    for _ in range(passes):
        if worker.run_once() > 0 and not [r for r in outbox.lane_heads(worker.db)
                                          if r.next_attempt_at <= clock()]:
            return


def test_enqueue_is_idempotent_on_key_and_wakes_only_after_commit(db, clock):
    woken = []
    delivery = SlackDelivery(wake=lambda: woken.append(1), clock=clock)
    start(db, delivery)
    assert woken == [1]
    with db.write() as session:
        delivery.enqueue(session, [Post(1, Target.thread, Reply("again"), key="incident:1:first")])
    assert [r.key for r in outbox_rows(db)] == ["incident:1:card", "incident:1:first",
                                                "incident:1:second"]
    with pytest.raises(RuntimeError):
        with db.write() as session:
            delivery.enqueue(session, [Post(1, Target.thread, Reply("x"), key="rolled-back")])
            raise RuntimeError("the command failed")
    assert len(outbox_rows(db)) == 3 and woken == [1, 1]


def outbox_rows(db):
    from sqlmodel import select

    from llm_incident.slack.models import OutboxMessage

    with db.read() as session:
        return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_rows_go_out_in_order_and_the_root_ts_becomes_the_thread(db, slack, worker, clock):
    delivery = SlackDelivery(clock=clock)
    start(db, delivery)
    drain(worker, clock)
    root, first, second = slack.posts()
    assert "thread_ts" not in root and root["channel"] == "C1"
    assert (first["text"], first["thread_ts"]) == ("first", root["ts"])
    assert (second["text"], second["thread_ts"]) == ("second", root["ts"])
    with db.read() as session:
        assert incidents.get_incident(session, 1).thread_ts == root["ts"]
    assert {r.status for r in outbox_rows(db)} == {"sent"}
    assert [r.result_ts for r in outbox_rows(db)] == [p["ts"] for p in (root, first, second)]


def test_card_refreshes_coalesce_and_a_change_during_delivery_updates_again(db, slack, worker,
                                                                            clock):
    delivery = SlackDelivery(clock=clock)
    start(db, delivery)
    drain(worker, clock)
    with db.write() as session:
        incident = incidents.get_incident(session, 1)
        incidents.post_status(session, incident, actor="U1", text="one", now=NOW)
        delivery.refresh_card(session, incident)
        incidents.post_status(session, incident, actor="U1", text="two", now=NOW)
        delivery.refresh_card(session, incident)
    cards = [r for r in outbox_rows(db) if r.kind == "card"]
    assert len(cards) == 1 and cards[0].payload == {"version": 3}
    # the state changes again while the worker is rendering the card: it must update once more
    [head] = outbox.lane_heads(db)
    assert outbox.claim(db, head, until=clock() + timedelta(seconds=60))
    result = worker.deliver(head)
    with db.write() as session:
        incident = incidents.get_incident(session, 1)
        incidents.post_status(session, incident, actor="U1", text="three", now=NOW)
        delivery.refresh_card(session, incident)
    worker._sent(head, result)
    [card] = [r for r in outbox_rows(db) if r.kind == "card"]
    assert card.status == "pending" and card.payload == {"version": 4}
    drain(worker, clock)
    assert [r.status for r in outbox_rows(db) if r.kind == "card"] == ["sent"]
    assert len(slack.calls("chat.update")) == 2


def test_a_claim_is_taken_once_and_a_crashed_attempt_is_retried_after_its_lease(db, slack,
                                                                               worker, clock):
    start(db, SlackDelivery(clock=clock))
    [head] = outbox.lane_heads(db)
    assert outbox.claim(db, head, until=clock() + timedelta(seconds=60))
    assert not outbox.claim(db, head, until=clock() + timedelta(seconds=60))  # another worker
    assert worker.run_once() > 0 and slack.posts() == []  # leased: nobody posts
    clock.now += timedelta(seconds=61)  # the claiming worker died mid-attempt
    drain(worker, clock)
    assert len(slack.posts()) == 3


def test_failures_back_off_rate_limits_wait_and_bad_blocks_fall_back_to_text(db, slack, worker,
                                                                          clock):
    start(db, SlackDelivery(clock=clock))
    slack.fail("chat.postMessage", times=1, status=429, retry_after=7)
    worker.run_once()
    [head] = outbox.lane_heads(db)
    assert head.attempts == 0 and head.next_attempt_at == NOW + timedelta(seconds=7)
    assert "429" in head.last_error
    clock.now += timedelta(seconds=7)
    slack.fail("chat.postMessage", times=1, status=502)
    worker.run_once()
    [head] = outbox.lane_heads(db)
    assert head.attempts == 1 and head.next_attempt_at > clock.now
    clock.now += timedelta(seconds=2)
    slack.fail("chat.postMessage", times=1, error="invalid_blocks")
    worker.run_once()
    [head] = outbox.lane_heads(db)
    assert head.payload["plain"] is True and head.next_attempt_at == clock.now
    worker.run_once()
    root = slack.posts()[0]
    assert root["text"] == "card" and "blocks" not in root


def test_permanent_errors_and_exhausted_retries_are_dead(db, slack, worker, clock):
    start(db, SlackDelivery(clock=clock))
    start(db, SlackDelivery(clock=clock), channel="C2")
    slack.fail("chat.postMessage", times=1, error="not_in_channel")
    for _ in range(4):
        slack.fail("chat.postMessage", times=1, status=500)
        worker.run_once()
        clock.now += timedelta(seconds=10)
    drain(worker, clock)
    statuses = [(r.incident_number, r.kind, r.status) for r in outbox_rows(db)]
    assert statuses.count((1, "thread", "dead")) == 2 and (1, "root", "dead") in statuses
    assert (2, "root", "dead") in statuses  # 3 × 500 = max_attempts
    dead_root = next(r for r in outbox_rows(db) if r.incident_number == 2 and r.kind == "root")
    assert "gave up after 3 attempts" in dead_root.last_error


def test_retry_after_and_seen_requests():
    assert _retry_after({"Retry-After": "12"}) == 12.0
    assert _retry_after({"retry-after": ["3"]}) == 3.0
    assert _retry_after({}) == 30.0 and _retry_after({"Retry-After": "soon"}) == 30.0
    assert _retry_after({"Retry-After": "99999"}) == 900.0


def test_seen_requests_dedupe_and_are_pruned(db):
    assert first_time(db, "slack:command:1", now=NOW)
    assert not first_time(db, "slack:command:1", now=NOW)
    assert prune_seen(db, now=NOW + timedelta(days=3)) == 1
    assert first_time(db, "slack:command:1", now=NOW + timedelta(days=3))


def test_replacing_posts_swaps_pending_content_and_updates_sent_messages_in_place(
        db, slack, worker, clock):
    delivery = SlackDelivery(clock=clock)
    start(db, delivery)

    def replace(text: str) -> None:
        with db.write() as session:
            delivery.enqueue(session, [Post(1, Target.thread, Reply(text), key="incident:1:first",
                                            replace=True)])

    replace("first, edited before it went out")
    drain(worker, clock)
    assert [p["text"] for p in slack.posts()] == ["card", "first, edited before it went out",
                                                  "second"]
    first_ts = slack.posts()[1]["ts"]
    replace("first, v2")
    replace("first, v3")  # joins the pending update
    updates = [r for r in outbox_rows(db) if r.kind == "update"]
    assert len(updates) == 1 and updates[0].payload["target"] == "incident:1:first"
    drain(worker, clock)
    [edit] = [c.args for c in slack.calls("chat.update")]
    assert (edit["ts"], edit["channel"], edit["text"]) == (first_ts, "C1", "first, v3")
    with db.write() as session:  # a replace for a key never posted is a plain post
        delivery.enqueue(session, [Post(1, Target.thread, Reply("new"), key="incident:1:new",
                                        replace=True)])
    drain(worker, clock)
    assert slack.posts()[-1]["text"] == "new"


def test_content_replaced_while_being_posted_is_edited_right_after(db, slack, worker, clock):
    delivery = SlackDelivery(clock=clock)
    start(db, delivery)
    drain(worker, clock)
    with db.write() as session:
        delivery.enqueue(session, [Post(1, Target.thread, Reply("third"), key="incident:1:third")])
    [head] = outbox.lane_heads(db)
    assert outbox.claim(db, head, until=clock() + timedelta(seconds=60))
    result = worker.deliver(head)  # posted "third"; before it is marked sent, it is replaced
    with db.write() as session:
        delivery.enqueue(session, [Post(1, Target.thread, Reply("third, corrected"),
                                        key="incident:1:third", replace=True)])
    worker._sent(head, result)
    drain(worker, clock)
    assert slack.posts()[-1]["text"] == "third"
    [edit] = [c.args for c in slack.calls("chat.update")]
    assert (edit["ts"], edit["text"]) == (slack.posts()[-1]["ts"], "third, corrected")
    assert {r.status for r in outbox_rows(db)} == {"sent"}
