"""The command core: runs parsed commands against the store and says what to answer and post.

Adapters (Slack, console) call `run()` / `submit()` with a `Context` and hand posts to a
`Delivery`, which stores them in the same transaction as the state change (nothing is lost).
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from datetime import datetime
from typing import Any

from sqlmodel import Session

from llm_incident.commands import changelog, mitigated, mitigations, triage_verb, views
from llm_incident.commands.alerting import AlertCommands, AlertConfig
from llm_incident.commands.closing import Closing
from llm_incident.commands.context import Context, Delivery, panel_key
from llm_incident.commands.control_changes import ControlChanges
from llm_incident.commands.forms import (
    as_list,
    as_str,
    attach_command,
    attach_modal,
)
from llm_incident.commands.labelling import Labelling
from llm_incident.commands.links import NO_LINKS, DashboardLinks, link
from llm_incident.commands.parse import (
    Alerts,
    Attach,
    ChangeControl,
    Close,
    Command,
    Events,
    Help,
    ListIncidents,
    Routes,
    Metrics,
    MetricsChart,
    Mitigated,
    Note,
    ParseError,
    ROUTE_WINDOWS,
    Reopen,
    RecordChange,
    Sample,
    ShowControls,
    Start,
    Status,
    Triage as TriageCommand,
    parse_command,
)
from llm_incident.commands.route_chart import chart_post
from llm_incident.commands.routes_view import routes_overview
from llm_incident.commands.starting import Starting
from llm_incident.commands.replies import (
    Actions,
    Button,
    Modal,
    Note as NoteBlock,
    Outcome,
    Post,
    Reply,
    Section,
    Target,
)
from llm_incident.controls import service as controls
from llm_incident.controls.values import ControlError
from llm_incident.evidence.service import EvidenceError, evidence_counts
from llm_incident.metrics.filters import FilterError
from llm_incident.db import Database
from llm_incident.events.routes import known_routes
from llm_incident.incidents import service as incidents
from llm_incident.incidents.models import Incident, IncidentClass, IncidentStatus, Severity
from llm_incident.metrics.compare import compare_windows
from llm_incident.metrics.windows import WindowError, parse_span
from llm_incident.settings import DEFAULT_EVENT_ID_PATTERN

log = logging.getLogger(__name__)


class CommandCore:
    """One entry point for every adapter."""

    def __init__(self, db: Database, delivery: Delivery, *, incident_channel: str | None = None,
                 can_change: mitigations.Permission | None = None,
                 event_id_pattern: str = DEFAULT_EVENT_ID_PATTERN,
                 alerts: AlertConfig | None = None, links: DashboardLinks = NO_LINKS):
        self.db = db
        self.links = links  # to the web dashboard (LLM_INCIDENT_DASHBOARD_URL); none when unset
        self.event_ids = re.compile(event_id_pattern)
        self.delivery = delivery
        self.incident_channel = incident_channel
        self.can_change = can_change  # None: anyone may change controls or close incidents
        self.control_changes = ControlChanges(db, can_change, self._record_in_incident)
        self.labelling = Labelling(delivery)
        self.starting = Starting(db, delivery, incident_channel, links)
        self._start = self.starting.start
        self.alerts = AlertCommands(db, alerts or AlertConfig(), self._start, delivery)
        self.closing = Closing(db, delivery, can_change, links)
        # The verb table: parsed command type -> handler(command, context) -> Outcome.
        self.verbs: dict[type, Callable[[Any, Context], Outcome]] = {
            Help: lambda _cmd, _ctx: Outcome(reply=views.help_reply()),
            Start: lambda cmd, ctx: self.starting.form(ctx) if cmd.form else self._start(cmd, ctx),
            TriageCommand: partial(triage_verb.run, self.db),
            Status: self._status,
            Metrics: self._metrics,
            MetricsChart: self._chart,
            ListIncidents: self._list,
            Routes: self._routes,
            Close: self.closing.close,
            Reopen: self.closing.reopen,
            ChangeControl: self.control_changes.run,
            ShowControls: self._show_controls,
            Attach: self._evidence,
            Note: self._evidence,
            Sample: self._evidence,
            Alerts: self.alerts.run,
            RecordChange: partial(changelog.record, self.db),
            Mitigated: partial(mitigated.mark, self.db, delivery),
            Events: self._events,
        }

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
        except FilterError as exc:
            return Outcome(reply=views.error_reply(f"bad filter at {exc}"))
        except (incidents.IncidentError, WindowError, ControlError, EvidenceError) as exc:
            return Outcome(reply=views.error_reply(str(exc)))

    def submit(self, kind: str, values: dict[str, str | list[str]], context: str,
               ctx: Context) -> Outcome:
        """A submitted modal."""
        if kind == "attach":
            return self.run(attach_command(values), ctx)
        if kind == "note":
            note = as_str(values.get("note"))
            if not note:
                return Outcome(reply=views.error_reply("the note is empty; nothing was saved"))
            return self.run(f"note {context} {note}", ctx)
        if kind == "control":
            text = mitigations.form_command(context, values)
            if text is None:
                return Outcome(reply=views.error_reply("enter a value (or `off`) and submit again"))
            return self.run(text, ctx)
        if kind != "start":
            return Outcome(reply=views.error_reply(f"unknown form `{kind}`"))
        routes = tuple(as_list(values.get("routes")))
        start = Start(
            routes=routes,
            incident_class=IncidentClass(as_str(values.get("incident_class")) or "unknown"),
            symptom=as_str(values.get("symptom")),
            since=as_str(values.get("since")) or None,
        )
        return self._start(start, ctx, severity=Severity(as_str(values.get("severity")) or "sev2"),
                           envs=tuple(as_list(values.get("envs"))),
                           tiers=tuple(as_list(values.get("customer_tiers"))))

    def execute(self, command: Command, ctx: Context) -> Outcome:
        handler = self.verbs.get(type(command))
        if handler is None:
            raise AssertionError(f"unhandled command {command!r}")
        return handler(command, ctx)

    # -- handlers -----------------------------------------------------------------------------

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
            _known_route(session, cmd.route)
            comparison = compare_windows(session, cmd.route, now=ctx.now, window=span)
        reply = views.metrics_reply(comparison, ephemeral=False)
        window = cmd.window if cmd.window in ROUTE_WINDOWS else None
        extra: list = [Actions((Button(f"Chart ({window or '1h'})",
                                       f"metrics {cmd.route} chart {window or '1h'}"),))]
        if url := self.links.route(cmd.route, window):
            extra.append(NoteBlock(f"📊 {link(url, 'this route in the dashboard')}"))
        return Outcome(reply=replace(reply, blocks=(*reply.blocks, *extra)))

    def _chart(self, cmd: MetricsChart, ctx: Context) -> Outcome:
        """Queue the route's chart for the channel (and thread) the command came from."""
        if not ctx.channel:
            raise incidents.IncidentError("a chart goes to a channel: type the command in one")
        with self.db.write() as session:
            _known_route(session, cmd.route)
            post = chart_post(session, cmd.route, cmd.window, channel=ctx.channel,
                              thread_ts=ctx.thread_ts, now=ctx.now,
                              request_key=ctx.request_key, links=self.links)
            self.delivery.enqueue(session, [post])
        return Outcome(reply=Reply(text=f"Charting `{cmd.route}` over the last {cmd.window}: "
                                        "the image is on its way here."))

    def _routes(self, cmd: Routes, ctx: Context) -> Outcome:
        with self.db.read() as session:
            return Outcome(reply=routes_overview(session, now=ctx.now, window=cmd.window,
                                                 links=self.links))

    def _list(self, _cmd: ListIncidents, ctx: Context) -> Outcome:
        with self.db.read() as session:
            return Outcome(reply=views.list_reply(incidents.list_open(session), ctx.now))

    def _events(self, cmd: Events, ctx: Context) -> Outcome:
        with self.db.read() as session:
            incident = self._incident_here(session, ctx)
            return Outcome(reply=self.labelling.events(session, cmd, ctx, incident))

    def _show_controls(self, cmd: ShowControls, ctx: Context) -> Outcome:
        with self.db.read() as session:
            if cmd.route is None:
                changed = [s for s in controls.list_controls(session) if s.version]
                if not changed:
                    return Outcome(reply=Reply(text="No route has changed controls; "
                                                    "`controls <route>` shows one."))
                lines = [f"• `{s.route}` ({s.env}): "
                         + (", ".join(mitigations.active_mitigations(s)) or "defaults")
                         for s in changed]
                return Outcome(reply=Reply(text="Routes with changed controls",
                                           blocks=(Section(title="Route controls",
                                                                 text="\n".join(lines)),)))
            state = controls.get_controls(session, cmd.route, mitigations.ENV)
            return Outcome(reply=mitigations.panel_with_proof(session, state))

    def _record_in_incident(self, session: Session, incident: Incident, cmd: ChangeControl,
                            result: controls.ChangeResult, line: str) -> None:
        """Timeline entry, the thread line, the route's panel and the summary card."""
        now = result.controls.updated_at
        incidents.add_timeline(session, incident, actor=result.controls.updated_by,
                               kind="control", now=now,
                               text=line, before={cmd.route: result.before},
                               after={cmd.route: result.after})
        if cmd.route not in incident.routes:
            incident.routes = [*incident.routes, cmd.route]
        incidents.touch(session, incident, now)
        n = incident.number
        self.delivery.enqueue(session, [
            Post(n, Target.thread, Reply(text=line, blocks=(Section(text=line),),
                                         ephemeral=False),
                 key=f"incident:{n}:control:{result.change_id}"),
            Post(n, Target.thread, mitigations.panel(result.controls),
                 key=panel_key(n, cmd.route), replace=True),
        ])
        self.delivery.refresh_card(session, incident)

    def attach_form(self, message_text: str, ctx: Context) -> Outcome:
        """The "Attach to incident" shortcut: a form prefilled with the event ids in a message."""
        found = list(dict.fromkeys(self.event_ids.findall(message_text or "")))
        with self.db.read() as session:
            open_incidents = incidents.list_open(session)
        if not open_incidents:
            return Outcome(reply=views.error_reply("there is no open incident to attach to; "
                                                   "`start` one first"))
        if not found:
            return Outcome(reply=views.error_reply(
                "no event ids found in that message (LLM_INCIDENT_EVENT_ID_PATTERN); "
                "use `attach #N <event_id…>` instead"))
        return Outcome(modal=attach_modal(open_incidents, found, channel=ctx.channel))

    def _evidence(self, cmd: Attach | Note | Sample, ctx: Context) -> Outcome:
        with self.db.write() as session:
            incident = incidents.find_incident(session, channel_id=ctx.channel,
                                               number=getattr(cmd, "incident", None),
                                               thread_ts=ctx.thread_ts)
            if ctx.via == "button" and incident.status == IncidentStatus.closed.value:
                return Outcome(reply=views.error_reply(
                    f"incident #{incident.number} is closed; use `/llm-incident "
                    f"{closed_usage(cmd, incident.number)}` to act now (nothing was changed)"))
            if isinstance(cmd, Attach):
                return Outcome(reply=self.labelling.attach(session, incident, cmd, ctx))
            if isinstance(cmd, Sample):
                return Outcome(reply=self.labelling.sample(session, incident, cmd, ctx))
            answer = self.labelling.note(session, incident, cmd, ctx)
            return Outcome(modal=answer) if isinstance(answer, Modal) else Outcome(reply=answer)

    def _incident_here(self, session: Session, ctx: Context) -> Incident | None:
        """The open incident this command belongs to, if any (controls work without one)."""
        try:
            return incidents.find_incident(session, channel_id=ctx.channel, thread_ts=ctx.thread_ts)
        except incidents.IncidentError:
            return None


def _known_route(session: Session, route: str) -> None:
    """Raise a user error naming the close matches (and `routes`) for a route never seen."""
    routes = known_routes(session)
    if route not in routes:
        close = difflib.get_close_matches(route, routes, n=3)
        hint = f" Did you mean {', '.join(f'`{r}`' for r in close)}?" if close else ""
        raise incidents.IncidentError(
            f"no events have been seen for route `{route}`.{hint} "
            "`/llm-incident routes` lists the routes seen.")


def closed_usage(cmd: Attach | Note | Sample, number: int) -> str:
    """The typed form of an evidence button, for the answer of a closed incident's button."""
    if isinstance(cmd, Attach):
        return f"attach #{number} {' '.join(cmd.event_ids)} {cmd.label or 'none'}"
    if isinstance(cmd, Note):
        return f"note #{number} {cmd.event_id} <text>"
    return f"sample {cmd.route}"


def card(session: Session, incident: Incident, now: datetime | None = None, *,
         links: DashboardLinks = NO_LINKS) -> Reply:
    """The summary card as it should look now (the outbox re-renders it on every change)."""
    counts = evidence_counts(session, incident)
    return views.summary_card(incident, now=now,
                              mitigations=mitigations.mitigations_for(session, incident.routes),
                              evidence=f"{counts.attached} attached · {counts.good} good · "
                                       f"{counts.bad} bad",
                              dashboard=links.incident(incident.number))
