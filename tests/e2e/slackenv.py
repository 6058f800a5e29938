"""The real server with Slack on, talking to a fake Slack Web API; seeded traffic and changes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlmodel import select

from llm_incident.app import create_app
from llm_incident.changes import ChangeIn, ChangeKind, record_change
from llm_incident.db import Database
from llm_incident.events.ingest import ingest_events
from llm_incident.incidents.models import Incident, TimelineEntry
from llm_incident.slack.models import OutboxMessage
from tests.fakeslack import FakeSlack
from tests.slackpayloads import BOT_TOKEN, SECRET, SlackSender
from tests.support import live_server, settings_for

WAR_ROOM = "C0WAR"
INCIDENTS = "C0INC"


def opening_thread(routes: int) -> int:
    """Posts in a new incident's thread: runbook, checklist, the Triage message and recent
    changes (when routes are named), and per route a metrics snapshot and a mitigation panel."""
    return 2 + (2 * routes + 2 if routes else 0)


@dataclass
class SlackEnv:
    url: str
    slack: FakeSlack
    sender: SlackSender
    db: Database
    app: Any

    # -- store ----------------------------------------------------------------------------------

    def incidents(self) -> list[Incident]:
        with self.db.read() as session:
            return list(session.exec(select(Incident).order_by(Incident.number)))

    def timeline(self, number: int) -> list[TimelineEntry]:
        with self.db.read() as session:
            incident = session.exec(select(Incident).where(Incident.number == number)).one()
            return list(session.exec(select(TimelineEntry)
                                     .where(TimelineEntry.incident_id == incident.id)
                                     .order_by(TimelineEntry.id)))

    def outbox(self) -> list[OutboxMessage]:
        with self.db.read() as session:
            return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)))

    def outbox_settled(self) -> bool:
        rows = self.outbox()
        return bool(rows) and all(r.status != "pending" for r in rows)

    # -- Slack side -----------------------------------------------------------------------------

    def root(self, channel: str = INCIDENTS, timeout: float = 15.0) -> dict[str, Any]:
        """The first top-level post in `channel` (an incident's summary card)."""
        return self.slack.wait_for(
            lambda: next((p for p in self.slack.posts(channel=channel) if "thread_ts" not in p),
                         None), timeout=timeout, what=f"a root post in {channel}")

    def thread(self, root: dict[str, Any], count: int) -> list[dict[str, Any]]:
        """The first `count` posts in the thread under `root` (waits for them)."""
        def ready() -> list[dict[str, Any]] | None:
            posts = self.slack.posts(thread_ts=root["ts"])
            return posts if len(posts) >= count else None

        return self.slack.wait_for(ready, what=f"{count} thread posts")

    def response(self, name: str) -> dict[str, Any]:
        return self.slack.wait_for(lambda: self.slack.responses(name), what=f"answer {name}")[-1]


def texts(message: dict[str, Any]) -> str:
    """Every text of a posted message, joined: fallback, sections, fields, context."""
    parts = [message.get("text", "")]
    for block in message.get("blocks") or []:
        parts.append((block.get("text") or {}).get("text", ""))
        parts.extend(f["text"] for f in block.get("fields") or [])
        parts.extend(e.get("text", "") for e in block.get("elements") or []
                     if e.get("type") == "mrkdwn")
    return "\n".join(parts)


def seed(db: Database, now: datetime | None = None) -> None:
    """Two routes with an hour of traffic (support.reply got longer answers lately) and changes."""
    now = now or datetime.now(timezone.utc)
    events = []
    for i in range(120):
        ts = now - timedelta(minutes=60) + timedelta(seconds=30 * i)
        recent = ts > now - timedelta(minutes=30)
        events.append({"event_id": f"seed-sr-{i}", "ts": ts.isoformat(), "route": "support.reply",
                       "model": "gpt-4o-mini", "tokens_in": 900,
                       "tokens_out": 2400 if recent else 300, "duration_ms": 800 + i,
                       "status": "flagged" if i % 10 == 0 else "ok"})
        events.append({"event_id": f"seed-ss-{i}", "ts": ts.isoformat(),
                       "route": "search.summarize", "model": "gpt-4o-mini", "tokens_in": 400,
                       "tokens_out": 120, "duration_ms": 300})
    with db.write() as session:
        ingest_events(session, events, now=now)
        record_change(session, ChangeIn(route="support.reply", kind=ChangeKind.prompt,
                                        description="prompt v42: friendlier, longer answers",
                                        ref="PR-1234", ts=now - timedelta(minutes=27)), now=now)


@contextmanager
def slack_server(db: Database, slack: FakeSlack, *, fast: bool = True, clock: Any = None,
                 **overrides: Any) -> Iterator[SlackEnv]:
    """create_app with Slack on (HTTP mode) against `slack`, served on a free port (`clock`:
    the app's clock, e.g. a fixed time)."""
    values: dict[str, Any] = {"slack_bot_token": BOT_TOKEN, "slack_signing_secret": SECRET,
                              "slack_api_url": slack.api_url, "incident_channel": INCIDENTS}
    values.update(overrides)
    app = create_app(settings_for(db, **values), database=db,
                     **({"clock": clock} if clock is not None else {}))
    if fast and getattr(app.state, "slack", None) is not None:
        for worker in (app.state.slack.worker, app.state.slack.replies):
            worker.poll_seconds, worker.backoff_base = 0.1, 0.1
    with live_server(app) as url:
        sender = SlackSender(url, slack.url)
        try:
            yield SlackEnv(url=url, slack=slack, sender=sender, db=db, app=app)
        finally:
            sender.close()
