"""Mitigation expiry: put back what temporary control changes overrode once `expires_at` passes,
and say so where the change was made (the incident thread, else the alert channel).

The revert, its audit entry and its posts share one transaction: done once, posted once.
"""

from __future__ import annotations

from datetime import datetime

from llm_incident.commands import mitigations, reminder_views
from llm_incident.commands.context import panel_key
from llm_incident.commands.replies import Post, Reply, Section, Target
from llm_incident.controls.service import Reverted, any_expired, revert_expired
from llm_incident.incidents import service as incidents
from llm_incident.incidents.models import IncidentStatus
from llm_incident.scheduler.context import JobContext


def revert_expired_controls(jc: JobContext, now: datetime) -> list[Reverted]:
    """Revert what ran out at `now`; what was put back."""
    with jc.db.read() as session:
        if not any_expired(session, now):
            return []
    with jc.db.write() as session:
        reverted = revert_expired(session, now)
        posts = []
        for item in reverted:
            line = reminder_views.expiry_line(item.route, item.before, item.after,
                                              item.expired_changes)
            reply = Reply(text=line, blocks=(Section(text=line),), ephemeral=False)
            key = f"expiry:{item.route}:{item.env}:v{item.version}"
            incident = None
            if item.incident is not None:
                incident = incidents.get_incident(session, item.incident)
            if incident is not None and incident.status != IncidentStatus.closed.value:
                incidents.add_timeline(session, incident, actor=jc.actor, kind="expiry",
                                       text=line, now=now, before={item.route: item.before},
                                       after={item.route: item.after})
                incidents.touch(session, incident, now)
                posts += [Post(incident.number, Target.thread, reply, key=key),
                          Post(incident.number, Target.thread, mitigations.panel(item.controls),
                               key=panel_key(incident.number, item.route), replace=True)]
                if jc.delivery is not None:
                    jc.delivery.refresh_card(session, incident)
            elif jc.alert_channel:
                posts.append(Post(None, Target.channel, reply, key=key, channel=jc.alert_channel))
        if jc.delivery is not None and posts:
            jc.delivery.enqueue(session, posts)
    return reverted
