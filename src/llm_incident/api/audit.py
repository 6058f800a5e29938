"""`GET /v1/audit`: the audit trail, newest first — every attempted control change, and who started,
closed, reopened or marked an incident or was refused doing so. Append-only: no endpoint or command
edits it."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, TypeAdapter, ValidationError
from sqlalchemy import false, or_
from sqlmodel import select

from llm_incident.api.deps import ApiError, needs, services
from llm_incident.api.docs import errors
from llm_incident.bounds import Positive, Text
from llm_incident.controls.models import ControlChange
from llm_incident.incidents.models import Incident, TimelineEntry

router = APIRouter(dependencies=[needs("read")], responses=errors(403), tags=["audit"])
MAX_LIMIT = 1000
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_AWARE = TypeAdapter(AwareDatetime)
_EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LATEST = datetime(9999, 12, 30, tzinfo=timezone.utc)
_TIME = {"format": "date-time"}


def parse_time(name: str, value: str | None) -> datetime | None:
    """An RFC 3339 timestamp with an offset (400 otherwise), clamped to the range the store holds."""
    if value is None:
        return None
    try:
        if not _RFC3339.fullmatch(value):
            raise ValueError
        moment = _AWARE.validate_python(value)
    except (ValueError, ValidationError):
        raise ApiError(400, f"{name} must be an RFC 3339 timestamp with an offset, "
                            "e.g. 2026-11-30T12:00:00Z") from None
    return min(max(moment, _EARLIEST), _LATEST)


class AuditEntryOut(BaseModel):
    id: int
    ts: datetime
    route: str
    env: str
    kind: str
    fields: list[str]
    before: dict[str, Any]
    after: dict[str, Any]
    actor: str
    actor_name: str | None
    reason: str
    incident: int | None
    version: int
    outcome: str
    expires_at: datetime | None


class IncidentActionOut(BaseModel):
    id: int
    ts: datetime
    incident: int
    kind: str
    actor: str
    actor_name: str | None
    text: str


class AuditAnswer(BaseModel):
    entries: list[AuditEntryOut]
    count: int
    incident_actions: list[IncidentActionOut]


# Timeline kinds that are decisions about an incident (the rest are its story: status, evidence…).
INCIDENT_ACTIONS = ("start", "mitigated", "close", "reopen", "refused")


def actor_match(column: Any, actor: str) -> Any:
    """`actor` exactly, or `actor on behalf of …` (an API key acting for someone)."""
    pattern = actor.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + " on behalf of %"
    return or_(column == actor, column.like(pattern, escape="\\"))


def entry_json(row: ControlChange) -> dict[str, Any]:
    return {"id": row.id, "ts": row.ts.isoformat(), "route": row.route, "env": row.env, "kind": row.kind,
            "fields": list(row.fields), "before": dict(row.before), "after": dict(row.after), "actor": row.actor,
            "actor_name": row.actor_name,
            "reason": row.reason, "incident": row.incident, "version": row.version, "outcome": row.outcome,
            "expires_at": row.expires_at.isoformat() if row.expires_at else None}


@router.get("/v1/audit", response_model=None, responses={200: {"model": AuditAnswer}, **errors(400, 401)})
def get_audit(
    request: Request,
    route: Annotated[Text | None, Query(description="only this route")] = None,
    env: Annotated[Text | None, Query(description="only this env")] = None,
    actor: Annotated[Text | None, Query(description="only this actor (`key:NAME` also matches "
                                                     "`key:NAME on behalf of …`)")] = None,
    incident: Annotated[Positive | None, Query(description="only changes made for this incident")] = None,
    since_text: Annotated[str | None, Query(alias="since", description="at or after (RFC 3339)",
                                            json_schema_extra=_TIME)] = None,
    until_text: Annotated[str | None, Query(alias="until", description="before (RFC 3339)",
                                            json_schema_extra=_TIME)] = None,
    limit: Annotated[Positive, Query(description=f"at most this many (≤ {MAX_LIMIT})")] = 100,
) -> dict[str, Any]:
    """Every attempted control change (applied, refused, conflict, expiry) matching the filters, and
    the incident actions (start, mitigated, close, reopen, refused) matching actor, incident and time."""
    since, until = parse_time("since", since_text), parse_time("until", until_text)
    stmt = select(ControlChange)
    for column, value in ((ControlChange.route, route), (ControlChange.env, env),
                          (ControlChange.incident, incident)):
        if value is not None:
            stmt = stmt.where(column == value)
    if actor is not None:
        stmt = stmt.where(actor_match(ControlChange.actor, actor))
    if since is not None:
        stmt = stmt.where(ControlChange.ts >= since)
    if until is not None:
        stmt = stmt.where(ControlChange.ts < until)
    actions = select(TimelineEntry, Incident.number).join(Incident, Incident.id == TimelineEntry.incident_id) \
        .where(TimelineEntry.kind.in_(INCIDENT_ACTIONS))
    if route is not None or env is not None:
        actions = actions.where(false())  # incident actions belong to no one route
    if incident is not None:
        actions = actions.where(Incident.number == incident)
    if actor is not None:
        actions = actions.where(actor_match(TimelineEntry.actor, actor))
    if since is not None:
        actions = actions.where(TimelineEntry.ts >= since)
    if until is not None:
        actions = actions.where(TimelineEntry.ts < until)
    cap = min(limit, MAX_LIMIT)
    with services(request).db.read() as session:
        rows = session.exec(stmt.order_by(ControlChange.id.desc()).limit(cap)).all()
        entries = [entry_json(row) for row in rows]
        done = [{"id": e.id, "ts": e.ts.isoformat(), "incident": number, "kind": e.kind, "actor": e.actor,
                 "actor_name": e.actor_name, "text": e.text}
                for e, number in session.exec(actions.order_by(TimelineEntry.id.desc()).limit(cap)).all()]
    return {"entries": entries, "count": len(entries), "incident_actions": done}
