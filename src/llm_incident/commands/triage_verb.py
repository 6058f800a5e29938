"""`/llm-incident triage <route> [since <when>]`: the route's triage now — onset, blast radius,
attribution, likely cause, suggested mitigations — as the thread's Triage message shows it."""

from __future__ import annotations

from llm_incident.commands.context import Context
from llm_incident.commands.parse import Triage
from llm_incident.commands.since import since_time
from llm_incident.commands.replies import Outcome
from llm_incident.commands.triage_posts import route_triages, triage_reply
from llm_incident.db import Database
from llm_incident.events.routes import known_routes
from llm_incident.incidents import service as incidents


def run(db: Database, cmd: Triage, ctx: Context) -> Outcome:
    since = since_time(cmd.since, ctx.now) if cmd.since else None
    with db.read() as session:
        if cmd.route not in known_routes(session):
            raise incidents.IncidentError(f"no events have been seen for route `{cmd.route}`")
        here = _incident_here(session, ctx)
        klass = here.incident_class if here is not None else "unknown"
        triages = route_triages(session, [cmd.route], incident_class=klass, since=since,
                                now=ctx.now)
    reply = triage_reply(here.number if here is not None else 0, triages, ctx.now)
    return Outcome(reply=reply)


def _incident_here(session, ctx: Context):
    try:
        return incidents.find_incident(session, channel_id=ctx.channel, thread_ts=ctx.thread_ts)
    except incidents.IncidentError:
        return None
