"""Request identity and the seen-request table: a retried or replayed Slack request runs once."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from llm_incident.db import Database
from llm_incident.slack.models import SeenRequest

KEEP_SEEN = timedelta(days=2)  # Slack signatures are valid 5 minutes; retries come within an hour


def request_key(body: dict[str, Any], raw_body: str = "") -> str:
    """A stable id for one user action: the event id, the trigger id, else a hash of the body.

    The same key comes back on Slack's retries (`X-Slack-Retry-Num`) and on replays of the
    signed body, and becomes `Context.request_key` (so `start` dedupes on it too).
    """
    kind = body.get("type") or ("command" if body.get("command") else "request")
    if body.get("event_id"):
        return f"slack:event:{body['event_id']}"[:200]
    trigger = body.get("trigger_id")
    if trigger:
        action = ((body.get("actions") or [{}])[0] or {}).get("action_id", "")
        suffix = f":{action}" if action else ""
        return f"slack:{kind}:{trigger}{suffix}"[:200]
    digest = hashlib.sha256(raw_body.encode("utf-8")).hexdigest()
    return f"slack:{kind}:sha256:{digest}"[:200]


def first_time(db: Database, key: str, *, now: datetime) -> bool:
    """Record `key`; False when it was already recorded (a retry or a replay)."""
    try:
        with db.write() as session:
            if session.get(SeenRequest, key) is not None:
                return False
            session.add(SeenRequest(key=key, seen_at=now))
            session.flush()
    except IntegrityError:  # a concurrent twin recorded it first
        return False
    return True


def prune_seen(db: Database, *, now: datetime, keep: timedelta = KEEP_SEEN) -> int:
    """Forget request ids older than `keep`; returns how many were removed."""
    with db.write() as session:
        result = session.connection().execute(
            delete(SeenRequest).where(SeenRequest.seen_at < now - keep))
        return result.rowcount or 0
