"""Redraw each open incident's Triage message and runbook answers once a minute for its first
hour (`triage_posts.REFRESH_FOR`), editing them in place: the "now" numbers move on, the onset
stays. An incident whose onset was not found at the start gets it here once the data shows it.

One slot per (incident, minute): a restart or a second replica redraws nothing twice.
"""

from __future__ import annotations

from datetime import datetime, timezone

from llm_incident.commands import triage_posts
from llm_incident.incidents import service as incidents
from llm_incident.scheduler.context import JobContext
from llm_incident.scheduler.slots import claim_slot, unclaimed

JOB = "triage-refresh"


def refresh_triage(jc: JobContext, now: datetime) -> list[int]:
    """Redraw what is due; the incident numbers redrawn."""
    minute = now.replace(second=0, microsecond=0).isoformat()
    with jc.db.read() as session:
        young = [i for i in incidents.list_open(session) if i.routes
                 and now - _aware(i.started_at) <= triage_posts.REFRESH_FOR]
        due = unclaimed(session, JOB, [f"{i.number}:{minute}" for i in young])
    done = []
    for slot in due:
        number = int(slot.split(":", 1)[0])
        with jc.db.read() as session:  # statistics outside the write lock
            incident = incidents.get_incident(session, number)
            triages = triage_posts.incident_triages(session, incident, now)
        with jc.db.write() as session:
            if not claim_slot(session, JOB, slot, now=now):
                continue
            incident = incidents.get_incident(session, number)
            if incident.onset_at is None and triage_posts.primary(triages) is not None:
                triage_posts.record_onset(session, incident, triages, since=None,
                                          actor=jc.actor, now=now)
                if jc.delivery is not None:
                    jc.delivery.refresh_card(session, incident)
            if jc.delivery is not None:
                jc.delivery.enqueue(session, triage_posts.triage_posts(
                    number, incident, triages, now, replace=True))
            done.append(number)
    return done


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
