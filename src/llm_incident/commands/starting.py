"""`start`: open an incident (from the command, the start form or an alert's button) and queue
its opening posts — the card, triage, the checklist, a metrics snapshot and a controls panel per
route, recent changes, and a link in the channel it was started from."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from llm_incident.changes import recent_changes
from llm_incident.commands import mitigations, views
from llm_incident.commands.context import Context, Delivery, panel_key
from llm_incident.commands.forms import start_modal
from llm_incident.commands.links import NO_LINKS, DashboardLinks
from llm_incident.commands.parse import Start
from llm_incident.commands.replies import Outcome, Post, Reply, Target
from llm_incident.commands.since import since_time
from llm_incident.commands.triage_posts import (ALERT, SINCE, onset_windows, record_onset,
                                                route_triages, triage_posts)
from llm_incident.controls import service as controls
from llm_incident.db import Database
from llm_incident.events.routes import known_routes
from llm_incident.incidents import service as incidents
from llm_incident.incidents.models import Incident, Severity
from llm_incident.metrics.compare import compare_windows
from llm_incident.triage.report import Triage

SNAPSHOT_WINDOW = timedelta(minutes=30)
CHANGES_LOOKBACK = timedelta(hours=24)


class Starting:
    def __init__(self, db: Database, delivery: Delivery, incident_channel: str | None,
                 links: DashboardLinks = NO_LINKS) -> None:
        self.db, self.delivery, self.incident_channel = db, delivery, incident_channel
        self.links = links

    def form(self, ctx: Context) -> Outcome:
        with self.db.read() as session:
            routes = known_routes(session)
        return Outcome(modal=start_modal(routes))

    def start(self, cmd: Start, ctx: Context, *, severity: Severity = Severity.sev2,
              envs: tuple[str, ...] = (), tiers: tuple[str, ...] = (),
              trigger: dict | None = None) -> Outcome:
        """Start an incident; `trigger` (an alert's rule, metric and route) is kept in its
        timeline for the mitigation check."""
        channel = self.incident_channel or ctx.channel
        request = incidents.StartRequest(
            commander=ctx.user, symptom=cmd.symptom, incident_class=cmd.incident_class,
            severity=severity, routes=cmd.routes, envs=envs, customer_tiers=tiers,
            channel_id=channel, origin_channel_id=ctx.channel, request_key=ctx.request_key,
        )
        since = since_time(cmd.since, ctx.now) if cmd.since else None
        source = SINCE
        if since is None and trigger and trigger.get("onset"):  # the alert's onset
            since, source = datetime.fromisoformat(trigger["onset"]), ALERT
        with self.db.read() as session:  # statistics outside the write lock
            triages = route_triages(session, cmd.routes, incident_class=cmd.incident_class,
                                    since=since, now=ctx.now, source=source)
        with self.db.write() as session:
            incident, created = incidents.start_incident(session, request, now=ctx.now)
            if created and trigger:
                incidents.add_timeline(session, incident, actor=ctx.user, kind="trigger",
                                       now=ctx.now, text=f"started from alert {trigger['alert']}",
                                       after=trigger)
            if created:
                record_onset(session, incident, triages, since=since, source=source,
                             actor=ctx.user, now=ctx.now)
                self.delivery.enqueue(session,
                                      self._opening_posts(session, incident, ctx, triages))
        where = f" in <#{channel}>" if channel and channel != ctx.channel else ""
        text = (f"Incident #{incident.number} started{where}; you are the commander. "
                "The runbook, triage, checklist and metrics are going into its thread.")
        began = views.began_text(incident)
        if created and began:
            text += f"\nIt began {began}."
        if not created:
            text = f"Incident #{incident.number} was already started by this request."
        if cmd.unknown_route_like:
            words = ", ".join(f"`{w}`" for w in cmd.unknown_route_like)
            text += f"\nNote: {words} is not a known route, so it was kept as symptom text."
        return Outcome(reply=Reply(text=text, blocks=()))

    def _opening_posts(self, session: Session, incident: Incident, ctx: Context,
                       triages: list[Triage]) -> list[Post]:
        n = incident.number
        posts = [Post(n, Target.root,
                      views.summary_card(incident, dashboard=self.links.incident(n)),
                      key=f"incident:{n}:card"),
                 *triage_posts(n, incident, triages, ctx.now),
                 Post(n, Target.thread, views.checklist_reply(incident),
                      key=f"incident:{n}:checklist")]
        anchored = onset_windows(incident, ctx.now)
        for route in incident.routes:
            if anchored is None:
                comparison = compare_windows(session, route, now=ctx.now, window=SNAPSHOT_WINDOW)
            else:
                comparison = compare_windows(session, route, now=ctx.now, window=anchored[1],
                                             baseline=anchored[0])
            snapshot = views.metrics_reply(comparison, incident_class=incident.incident_class,
                                           onset=incident.onset_at if anchored else None)
            posts.append(Post(n, Target.thread, snapshot, key=f"incident:{n}:snapshot:{route}"))
        for route in incident.routes:
            state = controls.get_controls(session, route, mitigations.ENV)
            posts.append(Post(n, Target.thread, mitigations.panel(state), key=panel_key(n, route)))
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
