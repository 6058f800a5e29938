"""Incident lifecycle: start, address, status, close — plain values in, plain values out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from llm_incident.incidents.models import (
    Incident,
    IncidentClass,
    IncidentStatus,
    Severity,
    TimelineEntry,
)


class IncidentError(Exception):
    """A request about incidents that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class StartRequest:
    """What is known when an incident starts."""

    commander: str
    symptom: str = ""
    incident_class: IncidentClass = IncidentClass.unknown
    severity: Severity = Severity.sev2
    routes: tuple[str, ...] = ()
    envs: tuple[str, ...] = ()
    customer_tiers: tuple[str, ...] = ()
    channel_id: str | None = None
    origin_channel_id: str | None = None
    request_key: str | None = None


def add_timeline(
    session: Session, incident: Incident, *, actor: str, kind: str, text: str, now: datetime,
    before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
    actor_name: str | None = None,
) -> TimelineEntry:
    """Append an entry; every change to an incident goes through here."""
    entry = TimelineEntry(incident_id=incident.id, ts=now, actor=actor, kind=kind, text=text,
                          before=before, after=after, actor_name=actor_name[:200] if actor_name else None)
    session.add(entry)
    session.flush()
    return entry


def touch(session: Session, incident: Incident, now: datetime) -> None:
    """Mark the incident changed (bumps `version`, `updated_at`). The bump is done by the
    database (`version = version + 1`): on PostgreSQL two requests touching the same incident
    at once are ordered by the row lock and neither bump is lost (a lost one left the card's
    outbox row asking for a version the incident never reached: a chat.update loop)."""
    incident.updated_at = now
    session.add(incident)
    session.flush()
    session.execute(update(Incident).where(Incident.id == incident.id)
                    .values(version=Incident.version + 1)
                    .execution_options(synchronize_session=False))
    session.refresh(incident, attribute_names=["version"])


def start_incident(session: Session, req: StartRequest, *, now: datetime) -> tuple[Incident, bool]:
    """Create the next-numbered incident; returns (incident, created). A repeated `request_key`
    (a retried or replayed request) returns the incident it already created."""
    if req.request_key:
        existing = session.exec(select(Incident).where(Incident.request_key == req.request_key)).first()
        if existing:
            return existing, False
    for _ in range(5):
        number = (session.exec(select(func.max(Incident.number))).one() or 0) + 1
        incident = Incident(
            number=number, incident_class=req.incident_class.value, severity=req.severity.value,
            status=IncidentStatus.open.value, symptom=req.symptom.strip(), routes=list(req.routes),
            envs=list(req.envs), customer_tiers=list(req.customer_tiers), channel_id=req.channel_id,
            origin_channel_id=req.origin_channel_id, commander=req.commander, started_at=now,
            updated_at=now, request_key=req.request_key,
        )
        try:
            with session.begin_nested():
                session.add(incident)
                session.flush()
        except IntegrityError:
            if req.request_key:
                existing = session.exec(
                    select(Incident).where(Incident.request_key == req.request_key)
                ).first()
                if existing:
                    return existing, False
            continue  # another process took this number; try the next one
        add_timeline(session, incident, actor=req.commander, kind="start", now=now,
                     text=f"started incident #{number}: {incident.symptom or '(no symptom given)'}",
                     after=incident_state(incident))
        return incident, True
    raise IncidentError("could not allocate an incident number; please try again")


def incident_state(incident: Incident) -> dict[str, Any]:
    """The fields the timeline records as before/after."""
    return {
        "status": incident.status,
        "class": incident.incident_class,
        "severity": incident.severity,
        "routes": list(incident.routes),
        "commander": incident.commander,
    }


def by_request_key(session: Session, key: str) -> Incident | None:
    """The incident a request (e.g. `alert:12`) started, if any."""
    return session.exec(select(Incident).where(Incident.request_key == key)).first()


def get_incident(session: Session, number: int) -> Incident:
    incident = session.exec(select(Incident).where(Incident.number == number)).first()
    if incident is None:
        raise IncidentError(f"there is no incident #{number}; `list` shows the open ones")
    return incident


def find_incident(session: Session, *, channel_id: str | None, number: int | None = None,
                  thread_ts: str | None = None) -> Incident:
    """`#N` when given; else the incident whose thread this is; else the newest open one in the
    channel (where its thread lives or where it was started)."""
    if number is not None:
        return get_incident(session, number)
    if thread_ts:
        found = session.exec(select(Incident).where(Incident.thread_ts == thread_ts)).first()
        if found:
            return found
    stmt = (
        select(Incident)
        .where(Incident.status != IncidentStatus.closed.value)
        .where(or_(Incident.channel_id == channel_id, Incident.origin_channel_id == channel_id))
        .order_by(Incident.number.desc())
    )
    found = session.exec(stmt).first()
    if found is None:
        raise IncidentError(
            "no open incident in this channel; name one with `#N` (see `list`) or `start` one"
        )
    return found


def list_open(session: Session) -> list[Incident]:
    stmt = (select(Incident).where(Incident.status != IncidentStatus.closed.value)
            .order_by(Incident.number.desc()))
    return list(session.exec(stmt))


def timeline(session: Session, incident: Incident) -> list[TimelineEntry]:
    stmt = (select(TimelineEntry).where(TimelineEntry.incident_id == incident.id)
            .order_by(TimelineEntry.ts, TimelineEntry.id))
    return list(session.exec(stmt))


def post_status(session: Session, incident: Incident, *, actor: str, text: str,
                now: datetime) -> TimelineEntry:
    if incident.status == IncidentStatus.closed.value:
        raise IncidentError(f"incident #{incident.number} is closed; status updates go to open ones")
    if not text.strip():
        raise IncidentError("a status update needs text: `status <what is happening>`")
    touch(session, incident, now)
    return add_timeline(session, incident, actor=actor, kind="status", text=text.strip(), now=now)


def close_incident(session: Session, incident: Incident, *, actor: str, summary: str,
                   now: datetime, actor_name: str | None = None) -> TimelineEntry:
    if incident.status == IncidentStatus.closed.value:
        raise IncidentError(f"incident #{incident.number} is already closed")
    before = incident_state(incident)
    incident.status = IncidentStatus.closed.value
    incident.closed_at = now
    incident.summary = summary.strip() or None
    touch(session, incident, now)
    return add_timeline(session, incident, actor=actor, kind="close", now=now,
                        text=summary.strip() or "closed", before=before,
                        after=incident_state(incident), actor_name=actor_name)


def reopen_incident(session: Session, incident: Incident, *, actor: str, reason: str,
                    now: datetime, actor_name: str | None = None) -> TimelineEntry:
    """Closed → open again (mitigated when it had been marked so); the close stays in the timeline."""
    if incident.status != IncidentStatus.closed.value:
        raise IncidentError(f"incident #{incident.number} is {incident.status}, not closed; "
                            "nothing to reopen")
    before = incident_state(incident)
    incident.status = (IncidentStatus.mitigated.value if incident.mitigated_at
                       else IncidentStatus.open.value)
    incident.closed_at = None
    touch(session, incident, now)
    return add_timeline(session, incident, actor=actor, kind="reopen", now=now,
                        text=reason.strip() or "reopened", before=before,
                        after=incident_state(incident), actor_name=actor_name)


def find_closed(session: Session, *, channel_id: str | None, number: int | None = None,
                thread_ts: str | None = None) -> Incident:
    """The incident a `reopen` means: `#N`, else the one whose thread this is, else the newest
    closed one of the channel."""
    if number is not None:
        return get_incident(session, number)
    if thread_ts:
        found = session.exec(select(Incident).where(Incident.thread_ts == thread_ts)).first()
        if found is not None:
            return found
    stmt = (
        select(Incident)
        .where(Incident.status == IncidentStatus.closed.value)
        .where(or_(Incident.channel_id == channel_id, Incident.origin_channel_id == channel_id))
        .order_by(Incident.number.desc())
    )
    found = session.exec(stmt).first()
    if found is None:
        raise IncidentError("no closed incident in this channel; name one with `reopen #N`")
    return found


def set_root_message(session: Session, incident: Incident, *, channel_id: str, ts: str) -> None:
    """Remember where the incident's summary card (and so its thread) lives."""
    incident.channel_id = channel_id
    incident.thread_ts = ts
    session.add(incident)
    session.flush()


def mark_mitigated(session: Session, incident: Incident, *, actor: str, text: str,
                   now: datetime) -> TimelineEntry | None:
    """Open → mitigated (the symptom is under control); None when it was not open."""
    if incident.status != IncidentStatus.open.value:
        return None
    before = incident_state(incident)
    incident.status = IncidentStatus.mitigated.value
    incident.mitigated_at = now
    touch(session, incident, now)
    return add_timeline(session, incident, actor=actor, kind="mitigated", now=now, text=text,
                        before=before, after=incident_state(incident))
