"""The command core: runs parsed commands against the store and says what to answer and post.

Adapters (Slack, console) call `run()` / `submit()` with a `Context` and hand posts to a
`Delivery`, which stores them in the same transaction as the state change (nothing is lost).
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import Session

from llm_incident.changes import recent_changes
from llm_incident.commands import views
from llm_incident.commands.parse import (
    Close,
    Command,
    Help,
    ListIncidents,
    Metrics,
    ParseError,
    Start,
    Status,
    parse_command,
)
from llm_incident.commands.replies import FieldKind, Modal, ModalField, Outcome, Post, Reply, Target
from llm_incident.db import Database
from llm_incident.events.routes import known_routes
from llm_incident.incidents import service as incidents
from llm_incident.incidents.models import Incident, IncidentClass, Severity
from llm_incident.metrics.compare import compare_windows
from llm_incident.metrics.windows import WindowError, parse_span

log = logging.getLogger(__name__)
SNAPSHOT_WINDOW = timedelta(minutes=30)
CHANGES_LOOKBACK = timedelta(hours=24)


@dataclass(frozen=True)
class Context:
    """Who asked, where, and when; `request_key` identifies the request for deduplication."""

    user: str
    channel: str | None
    now: datetime
    thread_ts: str | None = None
    request_key: str | None = None


class Delivery(Protocol):
    """Stores posts for delivery inside the caller's transaction."""

    def enqueue(self, session: Session, posts: list[Post]) -> None: ...

    def refresh_card(self, session: Session, incident: Incident) -> None: ...


class CommandCore:
    """One entry point for every adapter."""

    def __init__(self, db: Database, delivery: Delivery, *, incident_channel: str | None = None):
        self.db = db
        self.delivery = delivery
        self.incident_channel = incident_channel

    # -- entry points -------------------------------------------------------------------------

    def run(self, text: str, ctx: Context) -> Outcome:
        """Parse and run command text; user errors come back as an ephemeral reply."""
        try:
            with self.db.read() as session:
                routes = known_routes(session)
            command = parse_command(text, known_routes=routes)
            return self.execute(command, ctx)
        except ParseError as exc:
            return Outcome(reply=views.error_reply(str(exc), exc.usage))
        except (incidents.IncidentError, WindowError) as exc:
            return Outcome(reply=views.error_reply(str(exc)))

    def submit(self, kind: str, values: dict[str, str | list[str]], context: str,
               ctx: Context) -> Outcome:
        """A submitted modal."""
        if kind != "start":
            return Outcome(reply=views.error_reply(f"unknown form `{kind}`"))
        routes = tuple(_as_list(values.get("routes")))
        start = Start(
            routes=routes,
            incident_class=IncidentClass(_as_str(values.get("incident_class")) or "unknown"),
            symptom=_as_str(values.get("symptom")),
        )
        return self._start(start, ctx, severity=Severity(_as_str(values.get("severity")) or "sev2"),
                           envs=tuple(_as_list(values.get("envs"))),
                           tiers=tuple(_as_list(values.get("customer_tiers"))))

    def execute(self, command: Command, ctx: Context) -> Outcome:
        if isinstance(command, Help):
            return Outcome(reply=views.help_reply())
        if isinstance(command, Start):
            return self._start_form(ctx) if command.form else self._start(command, ctx)
        if isinstance(command, Status):
            return self._status(command, ctx)
        if isinstance(command, Metrics):
            return self._metrics(command, ctx)
        if isinstance(command, ListIncidents):
            with self.db.read() as session:
                return Outcome(reply=views.list_reply(incidents.list_open(session), ctx.now))
        if isinstance(command, Close):
            return self._close(command, ctx)
        raise AssertionError(f"unhandled command {command!r}")

    # -- handlers -----------------------------------------------------------------------------

    def _start_form(self, ctx: Context) -> Outcome:
        with self.db.read() as session:
            routes = known_routes(session)
        return Outcome(modal=start_modal(routes))

    def _start(self, cmd: Start, ctx: Context, *, severity: Severity = Severity.sev2,
               envs: tuple[str, ...] = (), tiers: tuple[str, ...] = ()) -> Outcome:
        channel = self.incident_channel or ctx.channel
        request = incidents.StartRequest(
            commander=ctx.user, symptom=cmd.symptom, incident_class=cmd.incident_class,
            severity=severity, routes=cmd.routes, envs=envs, customer_tiers=tiers,
            channel_id=channel, origin_channel_id=ctx.channel, request_key=ctx.request_key,
        )
        with self.db.write() as session:
            incident, created = incidents.start_incident(session, request, now=ctx.now)
            if created:
                self.delivery.enqueue(session, self._opening_posts(session, incident, ctx))
        where = f" in <#{channel}>" if channel and channel != ctx.channel else ""
        text = (f"Incident #{incident.number} started{where}; you are the commander. "
                "The runbook, triage checklist and metrics are going into its thread.")
        if not created:
            text = f"Incident #{incident.number} was already started by this request."
        if cmd.unknown_route_like:
            words = ", ".join(f"`{w}`" for w in cmd.unknown_route_like)
            text += f"\nNote: {words} is not a known route, so it was kept as symptom text."
        return Outcome(reply=Reply(text=text, blocks=()))

    def _opening_posts(self, session: Session, incident: Incident, ctx: Context) -> list[Post]:
        n = incident.number
        posts = [
            Post(n, Target.root, views.summary_card(incident), key=f"incident:{n}:card"),
            Post(n, Target.thread, views.runbook_reply(incident), key=f"incident:{n}:runbook"),
            Post(n, Target.thread, views.checklist_reply(incident), key=f"incident:{n}:checklist"),
        ]
        for route in incident.routes:
            comparison = compare_windows(session, route, now=ctx.now, window=SNAPSHOT_WINDOW)
            posts.append(Post(n, Target.thread, views.metrics_reply(comparison),
                              key=f"incident:{n}:snapshot:{route}"))
        if incident.routes:
            changes = recent_changes(session, list(incident.routes), until=ctx.now,
                                     lookback=CHANGES_LOOKBACK)
            posts.append(Post(n, Target.thread, views.changes_reply(list(incident.routes), changes),
                              key=f"incident:{n}:changes"))
        if ctx.channel and ctx.channel != incident.channel_id:
            link = Reply(text=f"Incident #{n} started by {views.user(ctx.user)}: "
                              f"{incident.symptom or 'no symptom given'} — follow it in its thread",
                         ephemeral=False)
            posts.append(Post(n, Target.origin, link, key=f"incident:{n}:origin-link"))
        return posts

    def _status(self, cmd: Status, ctx: Context) -> Outcome:
        with self.db.write() as session:
            incident = incidents.find_incident(session, channel_id=ctx.channel,
                                               number=cmd.incident, thread_ts=ctx.thread_ts)
            entry = incidents.post_status(session, incident, actor=ctx.user, text=cmd.text,
                                          now=ctx.now)
            key = f"incident:{incident.number}:status:{entry.id}"
            self.delivery.enqueue(session, [Post(incident.number, Target.thread,
                                                 views.status_reply(entry), key=key)])
            self.delivery.refresh_card(session, incident)
        return Outcome(reply=Reply(text=f"Status posted to incident #{incident.number}."))

    def _metrics(self, cmd: Metrics, ctx: Context) -> Outcome:
        span = parse_span(cmd.window)
        with self.db.read() as session:
            routes = known_routes(session)
            if cmd.route not in routes:
                close = difflib.get_close_matches(cmd.route, routes, n=3)
                hint = f" Did you mean {', '.join(f'`{r}`' for r in close)}?" if close else ""
                raise incidents.IncidentError(
                    f"no events have been seen for route `{cmd.route}`.{hint}")
            comparison = compare_windows(session, cmd.route, now=ctx.now, window=span)
        return Outcome(reply=views.metrics_reply(comparison, ephemeral=False))

    def _close(self, cmd: Close, ctx: Context) -> Outcome:
        with self.db.write() as session:
            incident = incidents.find_incident(session, channel_id=ctx.channel,
                                               number=cmd.incident, thread_ts=ctx.thread_ts)
            incidents.close_incident(session, incident, actor=ctx.user, summary=cmd.summary,
                                     now=ctx.now)
            entries = incidents.timeline(session, incident)
            self.delivery.enqueue(session, [Post(incident.number, Target.thread,
                                                 views.timeline_reply(incident, entries),
                                                 key=f"incident:{incident.number}:closed")])
            self.delivery.refresh_card(session, incident)
        return Outcome(reply=Reply(text=f"Incident #{incident.number} closed."))


def start_modal(routes: list[str]) -> Modal:
    return Modal(
        kind="start",
        title="Start an LLM incident",
        submit="Start",
        fields=(
            ModalField("symptom", "Symptom", FieldKind.long_text,
                       hint="What users see, e.g. 'support.reply answers are 8x longer'"),
            ModalField("incident_class", "Class", FieldKind.select,
                       options=tuple(c.value for c in IncidentClass), initial="unknown"),
            ModalField("routes", "Affected routes", FieldKind.multi_select,
                       options=tuple(routes[:100]), required=False),
            ModalField("envs", "Environments (comma separated)", FieldKind.text, required=False),
            ModalField("customer_tiers", "Customer tiers (comma separated)", FieldKind.text,
                       required=False),
            ModalField("severity", "Severity", FieldKind.select,
                       options=tuple(s.value for s in Severity), initial="sev2"),
        ),
    )


def _as_str(value: str | list[str] | None) -> str:
    if isinstance(value, list):
        return value[0] if value else ""
    return (value or "").strip()


def _as_list(value: str | list[str] | None) -> list[str]:
    if isinstance(value, list):
        return [v for v in value if v]
    return [part.strip() for part in (value or "").split(",") if part.strip()]
