"""The durable Slack outbox: posts are stored with the state change that caused them.

`SlackDelivery` is the command core's `Delivery`: it inserts `slack_outbox` rows inside the
command's own transaction, so a post exists if and only if its change was committed.
`OutboxWorker` (outbox_worker.py) delivers them.

Row kinds: `root` (the incident's summary card, posted once), `thread` (a reply in its thread),
`origin` (a note in the channel the command came from, with a link to the thread), `channel` (a
top-level message in `channel`, e.g. an alert, or a DM when it is a user ID), `card`
(re-render the summary card from the database and `chat.update` the root; one pending row per
incident, coalesced), `update` (a `Post` with `replace`: `chat.update` of the message sent under
`payload.target`; one pending row per target, coalesced), `files` (a `Post` with attachments:
files rendered from the store and uploaded to the incident's thread, or, without an incident, to
`channel` and `payload.thread_ts`; see postmortem_delivery).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import event, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from llm_incident.commands.replies import Post
from llm_incident.db import Database
from llm_incident.incidents.models import Incident
from llm_incident.slack import blocks
from llm_incident.slack.models import OutboxMessage

log = logging.getLogger(__name__)

PENDING, SENT, DEAD = "pending", "sent", "dead"
CARD, UPDATE, FILES, CHANNEL = "card", "update", "files", "channel"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class SlackDelivery:
    """Stores posts for the outbox worker, in the caller's transaction."""

    def __init__(self, *, wake: Callable[[], None] | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.wake = wake
        self.clock = clock

    def enqueue(self, session: Session, posts: list[Post]) -> None:
        """One row per post; a post whose key is already stored is skipped (idempotent), unless
        it `replace`s: then the stored message gets the new content (in place once sent)."""
        now = self.clock()
        for post in posts:
            message = blocks.message(post.reply)
            key = post.key[:200]
            if post.replace and _replace(session, key, message, now):
                continue
            payload: dict[str, Any] = {"message": message}
            kind = post.target.value
            if post.attachments:  # rendered and uploaded at delivery (postmortem_delivery)
                kind = FILES
                payload["attachments"] = [{"filename": a.filename, "title": a.title,
                                           "kind": a.kind, **({"args": dict(a.args)}
                                                              if a.args else {})}
                                          for a in post.attachments]
            if post.thread_ts:  # a channel post's thread (incident posts find theirs)
                payload["thread_ts"] = post.thread_ts
            _insert_once(session, OutboxMessage(
                key=key, kind=kind, incident_number=post.incident, channel=post.channel,
                payload=payload, next_attempt_at=now, created_at=now))
        self._wake_after_commit(session)

    def refresh_card(self, session: Session, incident: Incident) -> None:
        """Ask for the summary card to be re-rendered; joins a card update still pending."""
        stmt = (select(OutboxMessage)
                .where(OutboxMessage.kind == CARD, OutboxMessage.status == PENDING,
                       OutboxMessage.incident_number == incident.number)
                .order_by(OutboxMessage.id).with_for_update())
        pending = session.exec(stmt).first()
        if pending is not None:
            version = max(int(pending.payload.get("version", 0)), incident.version)
            pending.payload = {**pending.payload, "version": version}  # reassign: JSON column
            session.add(pending)
            session.flush()
        else:
            now = self.clock()
            _insert_once(session, OutboxMessage(
                key=f"incident:{incident.number}:card:v{incident.version}:{uuid.uuid4().hex[:8]}",
                kind=CARD, incident_number=incident.number,
                payload={"version": incident.version}, next_attempt_at=now, created_at=now))
        self._wake_after_commit(session)

    def _wake_after_commit(self, session: Session) -> None:
        if self.wake is not None:
            wake = self.wake
            event.listen(session, "after_commit", lambda _session: wake(), once=True)


def _replace(session: Session, key: str, message: dict[str, Any], now: datetime) -> bool:
    """New content for the message stored under `key`; False when there is none yet.

    Pending: its content is swapped (`rev` tells the worker it changed mid-flight). Sent: an
    `update` row edits it in place, joining one still pending. Dead: nothing more to do.
    """
    row = session.exec(select(OutboxMessage).where(OutboxMessage.key == key)
                       .with_for_update()).first()
    if row is None:
        return False
    if row.status == PENDING:
        row.payload = {**row.payload, "message": message, "rev": int(row.payload.get("rev", 0)) + 1}
        session.add(row)
        session.flush()
        return True
    if row.status == SENT:
        pending = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == UPDATE,
                                        OutboxMessage.status == PENDING,
                                        OutboxMessage.incident_number == row.incident_number)
            .order_by(OutboxMessage.id).with_for_update()).all()
        joined = next((p for p in pending if p.payload.get("target") == key), None)
        if joined is not None:
            joined.payload = {**joined.payload, "message": message,
                              "rev": int(joined.payload.get("rev", 0)) + 1}
            session.add(joined)
            session.flush()
        else:
            _insert_once(session, OutboxMessage(
                key=f"{key}:update:{uuid.uuid4().hex[:12]}"[:200], kind=UPDATE,
                incident_number=row.incident_number,
                payload={"target": key, "message": message}, next_attempt_at=now,
                created_at=now))
    return True


def _insert_once(session: Session, row: OutboxMessage) -> bool:
    """Insert unless a row with the same key exists; True when inserted."""
    exists = session.exec(select(OutboxMessage.id).where(OutboxMessage.key == row.key)).first()
    if exists is not None:
        return False
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # a concurrent transaction stored the same key
        return False
    return True


# -- queue operations used by the worker ---------------------------------------------------------

def lane_heads(db: Database, *, limit: int = 500) -> list[OutboxMessage]:
    """The oldest pending row of each incident (rows go out in creation order per incident)."""
    with db.read() as session:
        heads = (select(func.min(OutboxMessage.id)).where(OutboxMessage.status == PENDING)
                 .group_by(OutboxMessage.incident_number).limit(limit))
        ids = [i for i in session.exec(heads) if i is not None]
        if not ids:
            return []
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.id.in_(ids))
                            .order_by(OutboxMessage.id))
        return list(rows)


def claim(db: Database, row: OutboxMessage, *, until: datetime,
          now: datetime | None = None) -> bool:
    """Take a due row for one attempt (compare-and-set on `attempts`); it stays leased until
    `until` (see `extend_lease`), after which another worker may retry it.

    With `now` (rows that post), the attempt is also marked in flight in the payload
    (`inflight`), and an earlier attempt that never concluded (the process died) becomes
    `probe_from`: the worker looks for that post before posting again. `row.payload` is
    updated to what was stored."""
    with db.write() as session:
        result = session.connection().execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row.id, OutboxMessage.status == PENDING,
                   OutboxMessage.attempts == row.attempts)
            .values(attempts=row.attempts + 1, next_attempt_at=until))
        if result.rowcount != 1:
            return False
        if now is not None:
            current = session.get(OutboxMessage, row.id)
            payload = dict(current.payload)
            if payload.get("inflight"):
                payload["probe_from"] = _earliest(payload.get("probe_from"), payload["inflight"])
            payload["inflight"] = now.isoformat()
            current.payload = payload  # reassign: JSON column
            session.add(current)
            row.payload = payload
        return True


def extend_lease(db: Database, row_id: int | None, attempts: int, *, until: datetime) -> bool:
    """Keep the lease of the attempt in flight (`attempts` as claimed); False when the row was
    concluded or taken over meanwhile."""
    with db.write() as session:
        result = session.connection().execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id, OutboxMessage.status == PENDING,
                   OutboxMessage.attempts == attempts)
            .values(next_attempt_at=until))
        return result.rowcount == 1


def _earliest(first: str | None, second: str) -> str:
    return second if not first else min(first, second)  # ISO 8601 UTC strings sort by time


def reschedule(db: Database, row_id: int, *, at: datetime, error: str | None,
               attempts: int | None = None, patch: dict[str, Any] | None = None) -> None:
    """Next attempt at `at`; `patch` is merged into the stored payload (None deletes a key), so
    content replaced meanwhile is kept."""
    with db.write() as session:
        row = session.get(OutboxMessage, row_id)
        if row is None or row.status != PENDING:
            return
        row.next_attempt_at = at
        row.last_error = error[:2000] if error else None
        if attempts is not None:
            row.attempts = attempts
        if patch:
            payload = {**row.payload, **patch}
            row.payload = {k: v for k, v in payload.items() if v is not None}
        session.add(row)


def mark_dead(db: Database, row_id: int, *, error: str) -> None:
    with db.write() as session:
        row = session.get(OutboxMessage, row_id)
        if row is not None and row.status == PENDING:
            row.status = DEAD
            row.last_error = error[:2000]
            session.add(row)


def sent_message(db: Database, key: str) -> OutboxMessage | None:
    """The row stored under `key` (for `update` rows: the message to edit)."""
    with db.read() as session:
        return session.exec(select(OutboxMessage).where(OutboxMessage.key == key)).first()


def root_status(db: Database, incident_number: int) -> str | None:
    """Status of the incident's root row (None when there is none)."""
    with db.read() as session:
        stmt = (select(OutboxMessage.status)
                .where(OutboxMessage.incident_number == incident_number,
                       OutboxMessage.kind == "root")
                .order_by(OutboxMessage.id))
        return session.exec(stmt).first()


def counts(db: Database) -> dict[str, int]:
    """Rows per status (for health output and tests)."""
    with db.read() as session:
        stmt = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        return {status: n for status, n in session.exec(stmt)}
