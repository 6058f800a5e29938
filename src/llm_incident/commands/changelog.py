"""`/llm-incident change <route> [kind] <text>`: record a change in the change log by hand."""

from __future__ import annotations

from llm_incident.changes import ChangeIn, ChangeKind, record_change
from llm_incident.commands.context import Context
from llm_incident.commands.parse import RecordChange
from llm_incident.commands.replies import Outcome, Reply
from llm_incident.db import Database


def record(db: Database, cmd: RecordChange, ctx: Context) -> Outcome:
    """Store the change (shown in the incident's "changes" post and in postmortems)."""
    change = ChangeIn(route=cmd.route, kind=ChangeKind(cmd.kind), description=cmd.text[:10_000],
                      author=ctx.user)
    with db.write() as session:
        row = record_change(session, change, now=ctx.now)
    return Outcome(reply=Reply(text=f"Recorded a {row.kind} change on `{row.route}` "
                                    f"at {row.ts:%H:%M} UTC: {row.description}"))
