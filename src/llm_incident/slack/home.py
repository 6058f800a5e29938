"""The App Home tab: open incidents, routes with active mitigations, the routes overview (the
worst routes of `/llm-incident routes`, a line each), a "Start incident" button.

`HomeTab` builds the view for a publish; the overview is computed at most once per `ttl` for
everyone who opens the tab (200 routes cost ~200 window comparisons), the rest is read fresh.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from llm_incident.commands import mitigations, views
from llm_incident.commands.links import NO_LINKS, DashboardLinks, link
from llm_incident.commands.replies import Actions, Block, Button, Note, Reply, Section
from llm_incident.commands.routes_view import route_lines
from llm_incident.controls import service as controls
from llm_incident.dashboard.overview import Row, overview_rows
from llm_incident.dashboard.ranges import RANGES
from llm_incident.db import Database
from llm_incident.incidents import service as incidents_service
from llm_incident.incidents.models import Incident
from llm_incident.slack.blocks import render_blocks

MAX_HOME_BLOCKS = 100
MAX_LISTED = 30
MAX_HOME_ROUTES = 15  # the worst routes; `/llm-incident routes` and the dashboard list them all
HOME_WINDOW = "1h"
OVERVIEW_TTL = timedelta(seconds=30)


def home_reply(incidents: Sequence[Incident], *, now: datetime,
               mitigations: Mapping[str, Sequence[str]] | None = None,
               routes: Sequence[Row] | None = None, window: str = HOME_WINDOW,
               links: DashboardLinks = NO_LINKS) -> Reply:
    """What the Home tab shows, as a reply model (the console could show it too); `routes`:
    the overview rows (None: not shown)."""
    blocks: list[Block] = [
        Section(title="llm-incident",
                text="Incident response for LLM features. Type `/llm-incident help` in any channel "
                     "for the commands."),
        Actions((Button("Start incident", "start", style="primary"),)),
    ]
    if incidents:
        blocks.append(Section(title=f"Open incidents ({len(incidents)})"))
        for incident in list(incidents)[:MAX_LISTED]:
            icon = views.STATUS_ICON.get(incident.status, "")
            routes_named = ", ".join(f"`{r}`" for r in incident.routes) or "no routes named"
            url = links.incident(incident.number)
            blocks.append(Section(text=(
                f"*#{incident.number}* {icon} {incident.status} · {incident.incident_class} · "
                f"{incident.severity} — {incident.symptom or 'no symptom given'}\n"
                f"{routes_named} · commander {views.user(incident.commander)} · "
                f"open for {views.duration(now - incident.started_at)}"
                + (f" · <#{incident.channel_id}>" if incident.channel_id else "")
                + (f" · {link(url, 'dashboard')}" if url else "")
            )))
        if len(incidents) > MAX_LISTED:
            blocks.append(Note(f"{len(incidents) - MAX_LISTED} more: `/llm-incident list`"))
    else:
        blocks.append(Section(title="Open incidents", text="None right now. 🎉"))
    active = sorted((route, list(items)) for route, items in (mitigations or {}).items() if items)
    if active:
        lines = [f"• `{route}`: {'; '.join(items)}" for route, items in active[:MAX_LISTED]]
        if len(active) > MAX_LISTED:
            lines.append(f"and {len(active) - MAX_LISTED} more — `/llm-incident controls`")
        blocks.append(Section(title="Routes with active mitigations", text="\n".join(lines)))
    if routes is not None:
        blocks += route_lines(list(routes), window, limit=MAX_HOME_ROUTES, links=links)
    overview = links.overview(window)
    footer = f"updated {views.when(now)}" + (f" · {link(overview, 'dashboard')}" if overview
                                             else "")
    blocks.append(Note(footer))
    return Reply(text="llm-incident home", blocks=tuple(blocks))


def home_view(incidents: Sequence[Incident], *, now: datetime,
              mitigations: Mapping[str, Sequence[str]] | None = None,
              routes: Sequence[Row] | None = None, window: str = HOME_WINDOW,
              links: DashboardLinks = NO_LINKS) -> dict[str, Any]:
    """The `views.publish` view for the Home tab."""
    reply = home_reply(incidents, now=now, mitigations=mitigations, routes=routes,
                       window=window, links=links)
    return {"type": "home", "blocks": render_blocks(reply, max_blocks=MAX_HOME_BLOCKS)}


def mitigations_by_route(session: Session) -> dict[str, list[str]]:
    """Routes whose controls differ from the defaults, with what is active (for the Home tab)."""
    active = {}
    for state in controls.list_controls(session, env=mitigations.ENV):
        items = mitigations.active_mitigations(state)
        if items:
            active[state.route] = items
    return active


class HomeTab:
    """The Home view for a publish at `now`: incidents and mitigations read fresh, the routes
    overview reused for `ttl` (one computation at a time, whoever opens the tab)."""

    def __init__(self, db: Database, *, links: DashboardLinks = NO_LINKS,
                 window: str = HOME_WINDOW, ttl: timedelta = OVERVIEW_TTL,
                 mitigations: Callable[[Session], Mapping[str, Sequence[str]]] | None = None
                 ) -> None:
        self.db, self.links, self.window, self.ttl = db, links, window, ttl
        self.mitigations = mitigations or mitigations_by_route
        self._lock = threading.Lock()
        self._overview: tuple[datetime, list[Row]] | None = None

    def overview(self, now: datetime) -> list[Row]:
        """The overview rows, computed again when older than `ttl` (or from the future)."""
        with self._lock:
            cached = self._overview
            if cached is not None and cached[0] <= now < cached[0] + self.ttl:
                return cached[1]
            with self.db.read() as session:
                rows = overview_rows(session, now=now, rng=RANGES[self.window])
            self._overview = (now, rows)
            return rows

    def view(self, now: datetime) -> dict[str, Any]:
        with self.db.read() as session:
            open_incidents = incidents_service.list_open(session)
            active = self.mitigations(session)
        return home_view(open_incidents, now=now, mitigations=active, routes=self.overview(now),
                         window=self.window, links=self.links)
