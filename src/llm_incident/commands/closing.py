"""`close [#N] [summary]` and `reopen [#N] [reason]`: responders only; a refusal is audited.

A close freezes the postmortem as it is at that moment (later views read it, never recompile it),
then posts the timeline and the postmortem draft; a reopen says so in the thread and makes the
incident's buttons act again. A second close (after a reopen) freezes and posts a fresh draft.
"""

from __future__ import annotations

import logging

from sqlmodel import Session

from llm_incident.commands import mitigations, views
from llm_incident.commands.context import Context, Delivery
from llm_incident.commands.control_changes import refusal
from llm_incident.commands.parse import Close, Reopen
from llm_incident.commands.links import NO_LINKS, DashboardLinks
from llm_incident.commands.postmortem_posts import close_posts, closed_reply
from llm_incident.commands.replies import Outcome, Post, Reply, Section, Target
from llm_incident.db import Database
from llm_incident.incidents import service as incidents
from llm_incident.incidents.models import Incident
from llm_incident.incidents.postmortem_data import freeze_postmortem

log = logging.getLogger(__name__)


class Closing:
    def __init__(self, db: Database, delivery: Delivery,
                 can_change: mitigations.Permission | None,
                 links: DashboardLinks = NO_LINKS) -> None:
        self.db, self.delivery, self.can_change = db, delivery, can_change
        self.links = links

    def _refused(self, session: Session, incident: Incident, what: str, ctx: Context) -> Outcome | None:
        """Audit and answer a non-responder; None when the user may act."""
        if self.can_change is None or self.can_change(ctx.user):
            return None
        incidents.add_timeline(session, incident, actor=ctx.user, kind="refused",
                               text=f"tried to {what} the incident: not a responder", now=ctx.now,
                               actor_name=ctx.user_name)
        log.info("refused %s of #%s from %s: not a responder", what, incident.number, ctx.user)
        return refusal(f"{what} incidents")

    def close(self, cmd: Close, ctx: Context) -> Outcome:
        with self.db.write() as session:
            incident = incidents.find_incident(session, channel_id=ctx.channel,
                                               number=cmd.incident, thread_ts=ctx.thread_ts)
            refused = self._refused(session, incident, "close", ctx)
            if refused is not None:
                return refused
            entry = incidents.close_incident(session, incident, actor=ctx.user,
                                             summary=cmd.summary, now=ctx.now,
                                             actor_name=ctx.user_name)
            pm = freeze_postmortem(session, incident, now=ctx.now)
            entries = incidents.timeline(session, incident)
            n = incident.number
            again = "" if sum(e.kind == "close" for e in entries) == 1 else f":{entry.id}"
            self.delivery.enqueue(session, [Post(n, Target.thread, closed_reply(pm, entries),
                                                 key=f"incident:{n}:closed{again}"),
                                            *close_posts(session, incident, now=ctx.now,
                                                         again=again, pm=pm,
                                                         links=self.links)])
            self.delivery.refresh_card(session, incident)
        return Outcome(reply=Reply(text=f"Incident #{n} closed."))

    def reopen(self, cmd: Reopen, ctx: Context) -> Outcome:
        with self.db.write() as session:
            incident = incidents.find_closed(session, channel_id=ctx.channel,
                                             number=cmd.incident, thread_ts=ctx.thread_ts)
            refused = self._refused(session, incident, "reopen", ctx)
            if refused is not None:
                return refused
            entry = incidents.reopen_incident(session, incident, actor=ctx.user,
                                              reason=cmd.reason, now=ctx.now,
                                              actor_name=ctx.user_name)
            n = incident.number
            line = (f"🔴 {views.user(ctx.user)} reopened incident #{n}"
                    + (f": {cmd.reason.strip()}" if cmd.reason.strip() else "")
                    + ". Its buttons act again; `close` posts a fresh postmortem draft.")
            self.delivery.enqueue(session, [Post(n, Target.thread,
                                                 Reply(text=line, blocks=(Section(text=line),),
                                                       ephemeral=False),
                                                 key=f"incident:{n}:reopened:{entry.id}")])
            self.delivery.refresh_card(session, incident)
        return Outcome(reply=Reply(text=f"Incident #{n} reopened ({incident.status})."))
