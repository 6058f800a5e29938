"""`GET /v1/incidents/{n}/evidence`: an incident's labelled evidence, as the eval export rows."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from llm_incident.api.deps import ApiError, needs, services
from llm_incident.api.docs import errors
from llm_incident.api.schemas import EvidenceAnswer
from llm_incident.bounds import Positive
from llm_incident.evidence.export import export_rows
from llm_incident.evidence.service import evidence_counts
from llm_incident.incidents.service import IncidentError, get_incident

router = APIRouter(dependencies=[needs("read")], responses=errors(403), tags=["evidence"])


@router.get("/v1/incidents/{number}/evidence", response_model=None,
            responses={200: {"model": EvidenceAnswer}, **errors(400, 401, 404)})
def get_evidence(request: Request, number: Annotated[Positive, Path(examples=[1])]) -> dict[str, Any]:
    """`{incident, counts: {attached, good, bad}, evidence: [rows]}`, bad first; 404 if no such incident."""
    svc = services(request)
    with svc.db.read() as session:
        try:
            incident = get_incident(session, number)
        except IncidentError:
            raise ApiError(404, f"there is no incident #{number}") from None
        counts = evidence_counts(session, incident)
        rows = export_rows(session, incident)
    return {
        "incident": number,
        "counts": {"attached": counts.attached, "good": counts.good, "bad": counts.bad},
        "evidence": rows,
    }
