"""Answers to the person who asked, delivered durably by a worker of their own.

`ReplyQueue.enqueue` stores the answer (`slack_replies`); `ReplyWorker` sends it: through the
request's response_url while it lives (Slack keeps one 30 minutes), else as an ephemeral message
in the channel (or a normal post when the answer is public), else as a DM. 429s wait for
Retry-After, 5xx and network errors back off and retry, for up to a day; every Slack call has a
short timeout, so a hanging Slack delays answers, never commands or control changes.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from llm_incident.db import Database
from llm_incident.slack import failures
from llm_incident.slack.models import ReplyMessage

log = logging.getLogger(__name__)

RESPONSE_URL_LIFE = timedelta(minutes=29)  # Slack: 30 minutes, up to 5 answers
GIVE_UP_AFTER = timedelta(hours=24)
LEASE = timedelta(seconds=30)
# chat.postEphemeral errors after which a DM is the way to reach the person
NOT_HERE = {"channel_not_found", "not_in_channel", "user_not_in_channel", "is_archived",
            "messages_tab_disabled", "cannot_dm_bot"}


class ReplyQueue:
    """Stores answers; `wake` is called after each one so the worker sends it at once."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime],
                 wake: Callable[[], None] | None = None) -> None:
        self.db = db
        self.clock = clock
        self.wake = wake

    def enqueue(self, key: str, message: dict[str, Any], *, user: str, channel: str | None,
                response_url: str | None, ephemeral: bool, thread_ts: str | None = None) -> None:
        """Store the answer under `key` (once: a re-run request does not answer twice)."""
        now = self.clock()
        row = ReplyMessage(
            key=key[:200], created_at=now, next_attempt_at=now,
            expires_at=now + RESPONSE_URL_LIFE if response_url else None,
            payload={"message": message, "user": user, "channel": channel,
                     "response_url": response_url, "ephemeral": ephemeral,
                     "thread_ts": thread_ts})
        try:
            with self.db.write() as session:
                if session.exec(select(ReplyMessage.id).where(ReplyMessage.key == row.key)).first():
                    return
                session.add(row)
        except IntegrityError:
            return
        if self.wake is not None:
            self.wake()


    def has_answered(self, request_key: str) -> bool:
        """True when an answer to the request stored under `request_key` exists."""
        with self.db.read() as session:
            stmt = select(ReplyMessage.id).where(ReplyMessage.key.startswith(f"{request_key}:"))
            return session.exec(stmt.limit(1)).first() is not None


class ReplyWorker:
    """One thread delivering due answers in order; `wake()` makes it look at once."""

    def __init__(self, db: Database, client: WebClient, *, clock: Callable[[], datetime],
                 poll_seconds: float = 1.0, backoff_base: float = 1.0,
                 backoff_max: float = 120.0, timeout: int = 5) -> None:
        self.db = db
        self.client = client  # no retry handlers: this worker schedules its own retries
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.timeout = timeout
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="llm-incident-slack-replies")
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception as exc:  # noqa: BLE001 - e.g. the database restarting
                log.warning("Slack reply pass failed (%s); retrying", exc)
                busy = False
            if not busy:
                self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def run_once(self) -> bool:
        """Send every due answer once; True when one was sent (there may be more)."""
        now = self.clock()
        with self.db.read() as session:
            due = list(session.exec(
                select(ReplyMessage).where(ReplyMessage.status == "pending",
                                           ReplyMessage.next_attempt_at <= now)
                .order_by(ReplyMessage.id).limit(50)))
        sent = False
        for row in due:
            if self._stop.is_set() or not self._claim(row, now):
                continue
            try:
                via = self.deliver(row)
            except Exception as exc:  # noqa: BLE001 - classified: retry later or give up
                self._retry(row, exc)
                continue
            self._finish(row, "sent", via=via)
            sent = True
        return sent

    def deliver(self, row: ReplyMessage) -> str:
        """Send the answer one way or another; returns how it went."""
        p = row.payload
        message = dict(p.get("message") or {"text": " "})
        url = p.get("response_url")
        if url and row.expires_at and self.clock() < row.expires_at:
            body = {**message, "response_type": "ephemeral" if p.get("ephemeral") else
                    "in_channel", "replace_original": False}
            response = WebhookClient(url=url, timeout=self.timeout).send_dict(body)
            if response.status_code < 300:
                return "response_url"
            if response.status_code == 429 or response.status_code >= 500:
                raise RuntimeError(f"response_url answered {response.status_code}")
            log.info("response_url answered %s; answering in Slack instead",
                     response.status_code)
        channel, user = p.get("channel"), p.get("user") or ""
        if channel and not p.get("ephemeral"):
            self.client.chat_postMessage(channel=channel, **message)
            return "channel"
        if channel:
            try:
                self.client.chat_postEphemeral(channel=channel, user=user, **message)
                return "ephemeral"
            except SlackApiError as exc:
                if exc.response.get("error") not in NOT_HERE:
                    raise
        self.client.chat_postMessage(channel=user, **message)
        return "dm"

    # -- bookkeeping ----------------------------------------------------------------------------

    def _claim(self, row: ReplyMessage, now: datetime) -> bool:
        with self.db.write() as session:
            result = session.connection().execute(
                update(ReplyMessage)
                .where(ReplyMessage.id == row.id, ReplyMessage.status == "pending",
                       ReplyMessage.attempts == row.attempts)
                .values(attempts=row.attempts + 1, next_attempt_at=now + LEASE))
            return result.rowcount == 1

    def _finish(self, row: ReplyMessage, status: str, *, via: str | None = None,
                error: str | None = None) -> None:
        with self.db.write() as session:
            session.connection().execute(
                update(ReplyMessage).where(ReplyMessage.id == row.id)
                .values(status=status, via=via, sent_at=self.clock(),
                        last_error=error[:2000] if error else None))

    def _retry(self, row: ReplyMessage, exc: Exception) -> None:
        now = self.clock()
        error = _describe(exc)
        if isinstance(exc, SlackApiError) and not failures.transient(exc):
            log.error("answer to %s not delivered (%s); not retried",
                      row.payload.get("user"), error)
            self._finish(row, "dead", error=error)
            return
        if now - row.created_at > GIVE_UP_AFTER:
            log.error("answer to %s not delivered for a day (%s); giving up",
                      row.payload.get("user"), error)
            self._finish(row, "dead", error=error)
            return
        delay = min(self.backoff_max, self.backoff_base * 2 ** row.attempts)
        if isinstance(exc, SlackApiError) and failures.status_and_error(exc)[0] == 429:
            delay = failures.retry_after(exc.response.headers)
        else:
            delay *= 0.5 + random.random() / 2
        with self.db.write() as session:
            session.connection().execute(
                update(ReplyMessage).where(ReplyMessage.id == row.id)
                .values(next_attempt_at=now + timedelta(seconds=delay), last_error=error))
        log.info("answer to %s delayed %.1f s (%s)", row.payload.get("user"), delay, error)


def _describe(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        status, error = failures.status_and_error(exc)
        return f"Slack error {error or status}"
    return f"{type(exc).__name__}: {exc}"[:500]
