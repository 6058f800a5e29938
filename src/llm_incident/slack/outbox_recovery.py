"""After a crash or a lost answer: find what already reached Slack, and keep leases short.

Every chat.postMessage of the outbox carries Slack message metadata naming its outbox key
(`tag`). An attempt that may have reached Slack (the process died with the row in flight, the
call timed out, the connection broke, Slack answered 5xx) leaves `probe_from` in the row's
payload; before posting again the worker reads the thread back (conversations.replies) or the
channel (conversations.history), from shortly before that first attempt with
include_all_metadata, and adopts the message it finds (`find_posted`). Uploads record their file
id before files.completeUploadExternal; a retry looks for it among the thread's files
(`shared_files`). A read Slack refuses (missing `channels:history`, `not_in_channel`, …) is
logged and the row is posted again: at least once, as before. DMs addressed by user ID are not
looked for (their channel is unknown until Slack answers).

`Heartbeat` extends the lease of the row in flight while a long delivery runs, so the lease can
be a few seconds and a crash stalls the incident's remaining posts only that long.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from llm_incident.db import Database
from llm_incident.slack import outbox

log = logging.getLogger(__name__)

EVENT_TYPE = "llm_incident_outbox"
PROBE_MARGIN = timedelta(seconds=120)  # clock skew between us and Slack, and the call itself
MAX_PAGES = 5
RETRY_READ_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                     "request_timeout"}


def tag(key: str) -> dict[str, Any]:
    """The message metadata that names a post's outbox key."""
    return {"event_type": EVENT_TYPE, "event_payload": {"key": key}}


def probe_from(payload: dict[str, Any]) -> datetime | None:
    """When the first attempt that may have reached Slack started (None: none did)."""
    value = payload.get("probe_from")
    return datetime.fromisoformat(value) if value else None


def after_failure(payload: dict[str, Any], *, maybe_sent: bool) -> dict[str, Any]:
    """The payload patch for a failed attempt: it ends the attempt in flight and, when the
    request may have been processed, keeps its start for the next attempt's look-up."""
    patch: dict[str, Any] = {"inflight": None}
    started = payload.get("inflight")
    if maybe_sent and started:
        earlier = payload.get("probe_from")
        patch["probe_from"] = min(earlier, started) if earlier else started
    return patch


def findable(channel: str | None) -> bool:
    """Channel IDs can be read back; a user ID (a DM not opened yet) cannot."""
    return bool(channel) and not channel.startswith(("U", "W"))


def find_posted(client: WebClient, *, channel: str, thread_ts: str | None, key: str,
                since: datetime) -> str | None:
    """The ts of the message tagged with `key` posted since `since` (None: not found, or Slack
    would not let us read; then the caller posts)."""
    for message in _messages(client, channel=channel, thread_ts=thread_ts, since=since):
        metadata = message.get("metadata") or {}
        if (metadata.get("event_type") == EVENT_TYPE
                and (metadata.get("event_payload") or {}).get("key") == key):
            log.info("found %s already in Slack (ts %s); not posting it again", key,
                     message.get("ts"))
            return str(message.get("ts"))
    return None


def shared_files(client: WebClient, *, channel: str, thread_ts: str,
                 since: datetime) -> set[str]:
    """IDs of the files shared in the thread since `since`."""
    return {str(f.get("id")) for m in _messages(client, channel=channel, thread_ts=thread_ts,
                                                since=since)
            for f in m.get("files") or [] if f.get("id")}


def _messages(client: WebClient, *, channel: str, thread_ts: str | None,
              since: datetime) -> Iterator[dict[str, Any]]:
    """Messages of the thread (or top-level ones of the channel) since `since`, a few pages."""
    oldest = f"{(since - PROBE_MARGIN).timestamp():.6f}"
    cursor = None
    for _ in range(MAX_PAGES):
        try:
            if thread_ts:
                resp = client.conversations_replies(
                    channel=channel, ts=thread_ts, oldest=oldest, include_all_metadata=True,
                    limit=200, cursor=cursor)
            else:
                resp = client.conversations_history(
                    channel=channel, oldest=oldest, include_all_metadata=True, limit=200,
                    cursor=cursor)
        except SlackApiError as exc:
            status = getattr(exc.response, "status_code", 0)
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            if status == 429 or status >= 500 or data.get("error") in RETRY_READ_ERRORS:
                raise  # the worker retries later; the row keeps its probe_from
            log.warning("cannot read %s back from Slack (%s): posting again, it may appear "
                        "twice (grant channels:history / groups:history to avoid this)",
                        channel, data.get("error") or status)
            return
        yield from resp.get("messages") or []
        cursor = (resp.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return


class Heartbeat:
    """While `holding(row_id, attempts)` runs, extend the row's lease every `every` seconds."""

    def __init__(self, db: Database, *, lease: timedelta, clock: Callable[[], datetime],
                 every: float) -> None:
        self.db, self.lease, self.clock, self.every = db, lease, clock, every

    @contextmanager
    def holding(self, row_id: int | None, attempts: int) -> Iterator[None]:
        done = threading.Event()
        beat = threading.Thread(target=self._beat, args=(row_id, attempts, done),
                                name="llm-incident-outbox-lease", daemon=True)
        beat.start()
        try:
            yield
        finally:
            done.set()
            beat.join(5)

    def _beat(self, row_id: int | None, attempts: int, done: threading.Event) -> None:
        while not done.wait(self.every):
            try:
                if not outbox.extend_lease(self.db, row_id, attempts,
                                           until=self.clock() + self.lease):
                    return
            except Exception:  # noqa: BLE001 - a missed beat only shortens the lease
                log.warning("could not extend the lease of outbox row %s", row_id, exc_info=True)
