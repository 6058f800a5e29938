"""Deliver the Slack outbox: a background thread posting due rows in order, per incident.

Failures: 429 → retry after `Retry-After`; 5xx, connection errors and Slack's transient errors →
exponential backoff; `invalid_blocks` → once more as plain text; anything else (channel_not_found,
not_in_channel, invalid_auth, …) → `dead`, logged loudly, never retried by itself.

Exactly once, as far as Slack allows: a row is marked sent in the same transaction that stores
the message ts (and, for the root, the incident's thread). A post whose attempt may have reached
Slack without us hearing back (a crash between the call and that commit, a timeout, a reset) is
looked for before it is posted again: every post carries its outbox key as message metadata,
read back with conversations.replies / conversations.history (outbox_recovery). The chat.update
of cards and replaced posts is harmless to repeat. A claim leases the row for `lease` (4 s),
extended every `heartbeat_seconds` while the delivery runs, so a crash stalls the incident's
remaining posts for a few seconds before another process (or the restarted one) takes over.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from llm_incident.commands.core import card
from llm_incident.commands.links import NO_LINKS, DashboardLinks
from llm_incident.db import Database
from llm_incident.incidents import service as incidents
from llm_incident.incidents.models import Incident
from llm_incident.slack import blocks, failures, outbox, outbox_recovery, postmortem_delivery
from llm_incident.slack.dedupe import prune_seen
from llm_incident.slack.models import OutboxMessage

log = logging.getLogger(__name__)

BLOCK_ERRORS = {"invalid_blocks", "invalid_blocks_format"}
HOUSEKEEPING_EVERY = timedelta(minutes=10)
POSTING = {"root", "thread", "origin", outbox.CHANNEL, outbox.FILES}  # not idempotent in Slack


@dataclass(frozen=True)
class Sent:
    ts: str | None
    channel: str | None = None
    card_version: int | None = None  # the incident version a card update showed
    rev: int = 0  # the content revision posted (a `replace` may change it meanwhile)


@dataclass(frozen=True)
class Wait:
    reason: str


@dataclass(frozen=True)
class Dead:
    reason: str


class OutboxWorker:
    """Polls due rows and posts them; `wake()` after a commit makes it look at once."""

    def __init__(self, db: Database, client: WebClient, *,
                 clock: Callable[[], datetime] = outbox.utc_now,
                 render_clock: Callable[[], datetime] | None = None,
                 poll_seconds: float = 1.0, lease: timedelta = timedelta(seconds=4),
                 heartbeat_seconds: float = 1.0, backoff_base: float = 1.0,
                 backoff_max: float = 300.0, max_attempts: int = 25,
                 links: DashboardLinks = NO_LINKS) -> None:
        self.db = db
        self.links = links  # the card's link to the dashboard
        self.client = client  # without retry handlers: the outbox schedules its own retries
        self.clock = clock
        self.render_clock = render_clock or clock
        self.poll_seconds = poll_seconds
        self.lease = lease
        self.heartbeat = outbox_recovery.Heartbeat(db, lease=lease, clock=clock,
                                                   every=heartbeat_seconds)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_attempts = max_attempts
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_housekeeping: datetime | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="llm-incident-slack-outbox",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the message in flight, then stop; pending rows stay for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("Slack outbox worker did not stop within %.0f s", timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.run_once()
                self._housekeeping()
            except Exception:  # noqa: BLE001 - the worker must outlive a bad pass (e.g. DB down)
                log.exception("Slack outbox pass failed; trying again in %.0f s", self.poll_seconds)
                wait = self.poll_seconds
            if wait > 0:
                self._wake.wait(wait)
            self._wake.clear()

    def _housekeeping(self) -> None:
        now = self.clock()
        if self._next_housekeeping is None or now >= self._next_housekeeping:
            self._next_housekeeping = now + HOUSEKEEPING_EVERY
            prune_seen(self.db, now=now)

    # -- one pass -----------------------------------------------------------------------------

    def run_once(self) -> float:
        """Deliver the due head row of every incident; seconds until the next is due (0: go on)."""
        delivered = False
        wait = self.poll_seconds
        for row in outbox.lane_heads(self.db):
            if self._stop.is_set():
                break
            now = self.clock()
            if row.next_attempt_at > now:
                wait = min(wait, (row.next_attempt_at - now).total_seconds())
                continue
            if not outbox.claim(self.db, row, until=now + self.lease,
                                now=now if row.kind in POSTING else None):
                continue  # another worker took it
            attempts = row.attempts + 1
            try:
                with self.heartbeat.holding(row.id, attempts):
                    result = self.deliver(row)
            except Exception as exc:  # noqa: BLE001 - classified below, never lost
                self._failed(row, attempts, exc)
                continue
            if isinstance(result, Sent):
                self._sent(row, result)
                delivered = True
            elif isinstance(result, Wait):
                outbox.reschedule(self.db, row.id, at=now + timedelta(seconds=self.poll_seconds),
                                  error=result.reason, attempts=row.attempts,
                                  patch={"inflight": None})
            else:
                self._dead(row, attempts, result.reason)
        return 0.0 if delivered else max(wait, 0.01)

    # -- delivery -----------------------------------------------------------------------------

    def deliver(self, row: OutboxMessage) -> Sent | Wait | Dead:
        """One Slack call for the row (two for an origin note: permalink, then the post; a few
        for a `files` row: uploads, then a canvas — see postmortem_delivery)."""
        rev = int(row.payload.get("rev", 0))
        if row.kind == outbox.CHANNEL:
            if not row.channel:
                return Dead("the message has no channel")
            ts, channel = self._post(row, self._message(row), channel=row.channel)
            return Sent(ts=ts, channel=channel, rev=rev)
        if row.kind == outbox.UPDATE:
            return self._update(row, rev)
        if row.kind == outbox.FILES and row.incident_number is None:  # e.g. a route's chart
            if not row.channel:
                return Dead("the files have no channel")
            postmortem_delivery.deliver_files(self.db, self.client, row, None,
                                              now=self.render_clock())
            return Sent(ts=None, rev=rev)
        with self.db.read() as session:
            try:
                incident = incidents.get_incident(session, row.incident_number or 0)
            except incidents.IncidentError:
                return Dead(f"incident #{row.incident_number} does not exist")
            if row.kind == outbox.CARD:
                current = card(session, incident, now=self.render_clock(), links=self.links)
        if row.kind == "root":
            if not incident.channel_id:
                return Dead("the incident has no channel (set LLM_INCIDENT_INCIDENT_CHANNEL)")
            ts, channel = self._post(row, self._message(row), channel=incident.channel_id)
            return Sent(ts=ts, channel=channel, rev=rev)
        if not incident.thread_ts or not incident.channel_id:
            if outbox.root_status(self.db, incident.number) == outbox.PENDING:
                return Wait("waiting for the incident's root message")
            return Dead(f"incident #{incident.number}'s root message was never posted")
        if row.kind == "thread":
            ts, _ = self._post(row, self._message(row), channel=incident.channel_id,
                               thread_ts=incident.thread_ts)
            return Sent(ts=ts, rev=rev)
        if row.kind == outbox.FILES:
            postmortem_delivery.deliver_files(self.db, self.client, row, incident,
                                              now=self.render_clock())
            return Sent(ts=None, rev=rev)
        if row.kind == "origin":
            if not incident.origin_channel_id:
                return Dead("the incident has no origin channel")
            ts, _ = self._post(row, None, channel=incident.origin_channel_id, incident=incident)
            return Sent(ts=ts, rev=rev)
        if row.kind == outbox.CARD:
            message = self._plain_if_asked(row, blocks.message(current))
            self.client.chat_update(channel=incident.channel_id, ts=incident.thread_ts, **message)
            return Sent(ts=incident.thread_ts, card_version=incident.version)
        return Dead(f"unknown outbox row kind {row.kind!r}")

    def _update(self, row: OutboxMessage, rev: int) -> Sent | Dead:
        """`chat.update` of the message sent under `payload.target`, in the channel it went to."""
        target = outbox.sent_message(self.db, str(row.payload.get("target")))
        if target is None or target.status != outbox.SENT or not target.result_ts:
            return Dead(f"the message to update ({row.payload.get('target')}) was not sent")
        channel = target.channel
        if target.kind != outbox.CHANNEL:
            with self.db.read() as session:
                try:
                    incident = incidents.get_incident(session, target.incident_number or 0)
                except incidents.IncidentError:
                    return Dead(f"incident #{target.incident_number} does not exist")
            channel = (incident.origin_channel_id if target.kind == "origin"
                       else incident.channel_id)
        self.client.chat_update(channel=channel, ts=target.result_ts, **self._message(row))
        return Sent(ts=target.result_ts, rev=rev)

    def _post(self, row: OutboxMessage, message: dict[str, Any] | None, *, channel: str,
              thread_ts: str | None = None,
              incident: Incident | None = None) -> tuple[str | None, str]:
        """chat.postMessage tagged with the row's key, unless an earlier attempt that may have
        reached Slack did post it (then its ts); (ts, channel). An origin note (`incident`
        given) gets its thread link only when it is really posted."""
        since = outbox_recovery.probe_from(row.payload)
        if since is not None and outbox_recovery.findable(channel):
            found = outbox_recovery.find_posted(self.client, channel=channel,
                                                thread_ts=thread_ts, key=row.key, since=since)
            if found:
                return found, channel
        if incident is not None:
            message = self._with_thread_link(self._message(row), incident,
                                             plain=bool(row.payload.get("plain")))
        resp = self.client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                            unfurl_links=False,
                                            metadata=outbox_recovery.tag(row.key),
                                            **(message or {}))
        return resp.get("ts"), resp.get("channel") or channel

    def _message(self, row: OutboxMessage) -> dict[str, Any]:
        return self._plain_if_asked(row, dict(row.payload.get("message") or {"text": " "}))

    @staticmethod
    def _plain_if_asked(row: OutboxMessage, message: dict[str, Any]) -> dict[str, Any]:
        if row.payload.get("plain"):
            return {"text": message.get("text") or " "}
        return message

    def _with_thread_link(self, message: dict[str, Any], incident: Incident,
                          *, plain: bool) -> dict[str, Any]:
        try:
            answer = self.client.chat_getPermalink(channel=incident.channel_id,
                                                   message_ts=incident.thread_ts)
            # SlackResponse["permalink"] is None, not a KeyError, when Slack leaves it out
            link, why = answer.get("permalink"), "the answer had no usable permalink"
        except SlackApiError as exc:
            link, why = None, exc.response.get("error")
        if isinstance(link, str) and link.startswith(("https://", "http://")) and not any(
                c in link for c in "<>| "):
            where = f"<{link}|open the incident thread> in <#{incident.channel_id}>"
        else:
            log.warning("no permalink for incident #%s (%s); linking the channel instead",
                        incident.number, why)
            where = f"the thread is in <#{incident.channel_id}>"
        text = f"{message.get('text', '')} → {where}"
        if plain:
            return {"text": text}
        extra = {"type": "section", "text": blocks.mrkdwn(f"→ {where}")}
        body = list(message.get("blocks") or [])[: blocks.MAX_BLOCKS - 1] + [extra]
        return {"text": text, "blocks": body}

    # -- outcomes -----------------------------------------------------------------------------

    def _sent(self, row: OutboxMessage, result: Sent) -> None:
        """Mark the row sent in the same transaction that stores what Slack answered."""
        now = self.clock()
        with self.db.write() as session:
            current = session.get(OutboxMessage, row.id, with_for_update=True)
            if current is None or current.status != outbox.PENDING:
                return
            changed = (int(current.payload.get("version", 0)) > result.card_version
                       if result.card_version is not None
                       else int(current.payload.get("rev", 0)) > result.rev)
            if changed and row.kind in (outbox.CARD, outbox.UPDATE):
                current.next_attempt_at = now  # changed while we sent it: update once more
                session.add(current)
                return
            if row.kind == "root" and result.ts:
                incident = incidents.get_incident(session, row.incident_number or 0)
                incidents.set_root_message(session, incident, channel_id=result.channel or "",
                                           ts=result.ts)
            if row.kind == outbox.CHANNEL and result.channel:
                current.channel = result.channel  # a DM's channel id, for later updates
            current.status = outbox.SENT
            current.result_ts = result.ts
            current.sent_at = now
            current.last_error = None
            session.add(current)
            if changed:  # replaced while being posted: edit the posted message in place
                session.add(OutboxMessage(
                    key=f"{row.key}:update:{result.ts}"[:200], kind=outbox.UPDATE,
                    incident_number=row.incident_number, next_attempt_at=now, created_at=now,
                    payload={"target": row.key, "message": current.payload.get("message")}))

    def _failed(self, row: OutboxMessage, attempts: int, exc: Exception) -> None:
        now = self.clock()
        if isinstance(exc, SlackApiError):
            status, error = failures.status_and_error(exc)
            what = f"Slack answered {status} {error}".strip()
            if status == 429:
                delay = failures.retry_after(exc.response.headers)
                log.info("Slack rate-limited %s; retrying in %.0f s", row.key, delay)
                outbox.reschedule(self.db, row.id, at=now + timedelta(seconds=delay), error=what,
                                  attempts=attempts - 1,  # a rate limit is not a failed attempt
                                  patch=outbox_recovery.after_failure(row.payload,
                                                                      maybe_sent=False))
                return
            if error in BLOCK_ERRORS and not row.payload.get("plain"):
                log.warning("Slack rejected the blocks of %s (%s); sending it as plain text",
                            row.key, error)
                outbox.reschedule(self.db, row.id, at=now, error=what, patch={
                    "plain": True, **outbox_recovery.after_failure(row.payload,
                                                                   maybe_sent=False)})
                return
            if not failures.transient(exc):
                self._dead(row, attempts, what)
                return
            maybe_sent = status >= 500  # Slack may have done it before failing to answer
        else:
            maybe_sent = True  # a timeout or a reset may come after Slack got the request
            what = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, (OSError, TimeoutError, ConnectionError)):
                log.exception("unexpected error delivering %s", row.key)
        if attempts >= self.max_attempts:
            self._dead(row, attempts, f"{what} (gave up after {attempts} attempts)")
            return
        delay = self._backoff(attempts)
        log.warning("delivering %s failed (%s); attempt %d, retrying in %.1f s",
                    row.key, what, attempts, delay)
        outbox.reschedule(self.db, row.id, at=now + timedelta(seconds=delay), error=what,
                          patch=outbox_recovery.after_failure(row.payload,
                                                              maybe_sent=maybe_sent))

    def _backoff(self, attempts: int) -> float:
        delay = min(self.backoff_base * 2 ** max(attempts - 1, 0), self.backoff_max)
        return delay * random.uniform(0.8, 1.2)

    def _dead(self, row: OutboxMessage, attempts: int, reason: str) -> None:
        log.error(
            "SLACK MESSAGE NOT DELIVERED: %s (%s, incident #%s) is dead after %d attempt(s): %s. "
            "It will not be retried; fix the cause (e.g. invite the bot to the channel) and set "
            "its status back to 'pending' in slack_outbox to resend it.",
            row.key, row.kind, row.incident_number, attempts, reason)
        outbox.mark_dead(self.db, row.id, error=reason)

