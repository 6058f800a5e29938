"""The App Home tab: open incidents, routes with active mitigations, a "Start incident" button."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session

from llm_incident.commands import mitigations, views
from llm_incident.commands.replies import Actions, Button, Note, Reply, Section
from llm_incident.controls import service as controls
from llm_incident.incidents.models import Incident
from llm_incident.slack.blocks import render_blocks

MAX_HOME_BLOCKS = 100
MAX_LISTED = 30


def home_reply(incidents: Sequence[Incident], *, now: datetime,
               mitigations: Mapping[str, Sequence[str]] | None = None) -> Reply:
    """What the Home tab shows, as a reply model (the console could show it too)."""
    blocks: list = [
        Section(title="llm-incident",
                text="Incident response for LLM features. Type `/llm-incident help` in any channel "
                     "for the commands."),
        Actions((Button("Start incident", "start", style="primary"),)),
    ]
    if incidents:
        blocks.append(Section(title=f"Open incidents ({len(incidents)})"))
        for incident in list(incidents)[:MAX_LISTED]:
            icon = views.STATUS_ICON.get(incident.status, "")
            routes = ", ".join(f"`{r}`" for r in incident.routes) or "no routes named"
            blocks.append(Section(text=(
                f"*#{incident.number}* {icon} {incident.status} · {incident.incident_class} · "
                f"{incident.severity} — {incident.symptom or 'no symptom given'}\n"
                f"{routes} · commander {views.user(incident.commander)} · "
                f"open for {views.duration(now - incident.started_at)}"
                + (f" · <#{incident.channel_id}>" if incident.channel_id else "")
            )))
        if len(incidents) > MAX_LISTED:
            blocks.append(Note(f"{len(incidents) - MAX_LISTED} more: `/llm-incident list`"))
    else:
        blocks.append(Section(title="Open incidents", text="None right now. 🎉"))
    active = {route: list(items) for route, items in (mitigations or {}).items() if items}
    if active:
        lines = [f"• `{route}`: {'; '.join(items)}" for route, items in sorted(active.items())]
        blocks.append(Section(title="Routes with active mitigations", text="\n".join(lines)))
    blocks.append(Note(f"updated {views.when(now)}"))
    return Reply(text="llm-incident home", blocks=tuple(blocks))


def home_view(incidents: Sequence[Incident], *, now: datetime,
              mitigations: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """The `views.publish` view for the Home tab."""
    reply = home_reply(incidents, now=now, mitigations=mitigations)
    return {"type": "home", "blocks": render_blocks(reply, max_blocks=MAX_HOME_BLOCKS)}


def mitigations_by_route(session: Session) -> dict[str, list[str]]:
    """Routes whose controls differ from the defaults, with what is active (for the Home tab)."""
    active = {}
    for state in controls.list_controls(session, env=mitigations.ENV):
        items = mitigations.active_mitigations(state)
        if items:
            active[state.route] = items
    return active
