"""Incident reminders, computed from the store at `now` (a restart loses and repeats nothing):

- status nudge: an incident not closed whose last status update (or start) is older than its
  severity's interval gets one nudge per interval in its thread — slot = (incident, last update,
  interval number), so a server down for hours sends the one that is due, once;
- follow-up: `followup_days` after close, the commander gets a DM with the follow-ups.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from llm_incident.commands import reminder_views
from llm_incident.commands.replies import Post, Target
from llm_incident.incidents import service as incidents
from llm_incident.incidents.models import Incident, IncidentStatus, TimelineEntry
from llm_incident.incidents.postmortem_data import compile_postmortem
from llm_incident.scheduler.context import JobContext
from llm_incident.scheduler.slots import claim_slot, unclaimed

NUDGE_JOB, FOLLOWUP_JOB = "status-nudge", "follow-up"
FOLLOWUP_HORIZON = timedelta(days=30)  # closed longer ago than days + this: never reminded


def _last_status(session: Session, incident: Incident) -> datetime:
    stmt = select(func.max(TimelineEntry.ts)).where(TimelineEntry.incident_id == incident.id,
                                                    TimelineEntry.kind == "status")
    last = session.exec(stmt).one()
    return max(last, incident.started_at) if last else incident.started_at


def _due_nudges(jc: JobContext, session: Session, now: datetime
                ) -> list[tuple[int, str, timedelta, timedelta]]:
    """(incident number, slot, quiet for, interval) of each nudge due and not sent."""
    due = []
    for incident in incidents.list_open(session):
        minutes = jc.reminder_minutes.get(incident.severity)
        if not minutes:
            continue
        every = timedelta(minutes=minutes)
        base = _last_status(session, incident)
        if now >= base + every:
            k = int((now - base) / every)
            due.append((incident.number, f"{incident.number}:{base.isoformat()}:{k}",
                        now - base, every))
    fresh = set(unclaimed(session, NUDGE_JOB, [slot for _, slot, _, _ in due]))
    return [d for d in due if d[1] in fresh]


def send_status_nudges(jc: JobContext, now: datetime) -> list[int]:
    """Nudge every quiet incident once per interval; the incident numbers nudged."""
    with jc.db.read() as session:
        due = _due_nudges(jc, session, now)
    if not due:
        return []
    nudged = []
    with jc.db.write() as session:
        for number, slot, quiet, every in due:
            if not claim_slot(session, NUDGE_JOB, slot, now=now):
                continue
            nudged.append(number)
            if jc.delivery is not None:
                reply = reminder_views.status_nudge(incidents.get_incident(session, number),
                                                    quiet, every)
                jc.delivery.enqueue(session, [Post(number, Target.thread, reply,
                                                   key=f"{NUDGE_JOB}:{slot}")])
    return nudged


def send_follow_ups(jc: JobContext, now: datetime) -> list[int]:
    """DM each commander once, `followup_days` after their incident closed."""
    due = now - timedelta(days=jc.followup_days)
    stmt = (select(Incident.number).where(Incident.status == IncidentStatus.closed.value,
                                          Incident.closed_at <= due,
                                          Incident.closed_at > due - FOLLOWUP_HORIZON)
            .order_by(Incident.number))
    with jc.db.read() as session:
        numbers = unclaimed(session, FOLLOWUP_JOB, [str(n) for n in session.exec(stmt)])
    sent = []
    for number in numbers:
        with jc.db.write() as session:
            if not claim_slot(session, FOLLOWUP_JOB, number, now=now):
                continue
            incident = incidents.get_incident(session, int(number))
            sent.append(incident.number)
            if jc.delivery is None:
                continue
            pm = compile_postmortem(session, incident, now=now)
            reply = reminder_views.follow_up(incident, [*pm.human_follow_ups, *pm.follow_ups],
                                             jc.followup_days)
            jc.delivery.enqueue(session, [Post(incident.number, Target.channel, reply,
                                               key=f"{FOLLOWUP_JOB}:{incident.number}",
                                               channel=incident.commander)])
    return sent
