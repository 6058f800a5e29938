"""`/llm-incident mitigated [#N] [note]`: the commander says the symptom is under control."""

from __future__ import annotations

from llm_incident.commands.context import Context, Delivery
from llm_incident.commands.parse import Mitigated
from llm_incident.commands.replies import Outcome, Post, Reply, Section, Target
from llm_incident.db import Database
from llm_incident.incidents import service as incidents


def mark(db: Database, delivery: Delivery, cmd: Mitigated, ctx: Context) -> Outcome:
    """Open → mitigated, in the timeline, the thread and the card (e.g. after a kill switch,
    when the automatic check has no traffic to measure)."""
    with db.write() as session:
        incident = incidents.find_incident(session, channel_id=ctx.channel, number=cmd.incident,
                                           thread_ts=ctx.thread_ts)
        if incident.status != "open":
            raise incidents.IncidentError(
                f"incident #{incident.number} is {incident.status}, not open; nothing to mark")
        line = f"🟡 <@{ctx.user}> marked incident #{incident.number} mitigated" + (
            f": {cmd.note}" if cmd.note else "")
        entry = incidents.mark_mitigated(session, incident, actor=ctx.user, now=ctx.now,
                                         text=cmd.note or "marked mitigated")
        delivery.enqueue(session, [Post(incident.number, Target.thread,
                                        Reply(text=line, blocks=(Section(text=line),),
                                              ephemeral=False),
                                        key=f"incident:{incident.number}:mitigated:{entry.id}")])
        delivery.refresh_card(session, incident)
    return Outcome(reply=Reply(text=f"Incident #{incident.number} marked mitigated."))
