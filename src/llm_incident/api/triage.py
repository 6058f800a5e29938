"""`GET /v1/routes/{route}/triage`: the route's triage now (`llm_incident.triage.report`) —
shifts per stat, onset, blast radius, attribution, likely causes, suggested mitigations, the
metric deltas baseline (before the onset) vs now, and the runbook's answers.

Query: `class` (quality | latency | cost | provider | unknown: which stats define the onset),
`since` (RFC 3339 with an offset: the onset, given), `lookback` (10m … 24h, default 6h).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict

from llm_incident.api.audit import parse_time
from llm_incident.api.deps import ApiError, needs, services
from llm_incident.api.docs import errors
from llm_incident.api.metrics import route_warnings
from llm_incident.bounds import Text
from llm_incident.incidents.models import IncidentClass
from llm_incident.metrics.windows import WindowError, parse_span
from llm_incident.triage.report import triage

router = APIRouter(dependencies=[needs("read")], responses=errors(403), tags=["metrics"])
MIN_LOOKBACK, MAX_LOOKBACK = timedelta(minutes=10), timedelta(hours=24)
MAX_SINCE = timedelta(days=7)  # as `start … since`


class TriageAnswer(BaseModel):
    """The report (docs/triage.md describes every field)."""

    model_config = ConfigDict(extra="allow")

    route: str
    found: bool
    onset: str | None
    onset_source: str | None
    main_stat: str | None
    shifts: dict[str, Any]
    attributions: list[dict[str, Any]]
    causes: list[dict[str, Any]]
    suggestions: list[dict[str, Any]]
    deltas: dict[str, Any]
    runbook_fields: dict[str, str]
    warnings: list[str]


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such a number (an unbounded ratio) becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


@router.get("/v1/routes/{route}/triage", response_model=None,
            responses={200: {"model": TriageAnswer}, **errors(400, 401)})
def get_route_triage(
    route: str,
    request: Request,
    klass: Annotated[IncidentClass, Query(alias="class", description="which stats define "
                                          "the onset")] = IncidentClass.unknown,
    since_text: Annotated[str | None, Query(alias="since", description="the onset, given "
                                            "(RFC 3339)", json_schema_extra={"format": "date-time"})] = None,
    lookback: Annotated[Text, Query(description="how far back to look: 10m … 24h")] = "6h",
) -> dict[str, Any]:
    """Onset, blast radius, attribution, likely cause and suggested mitigations for `route`."""
    svc = services(request)
    now = svc.clock()
    since = parse_time("since", since_text)
    try:
        span = parse_span(lookback)
    except WindowError as exc:
        raise ApiError(400, f"lookback: {exc}") from None
    if not MIN_LOOKBACK <= span <= MAX_LOOKBACK:
        raise ApiError(400, "lookback must be between 10m and 24h")
    notes = []
    if since is not None and since >= now:
        notes.append("since is not in the past: nothing to compare yet, so the onset is detected")
        since = None
    elif since is not None and since < now - MAX_SINCE:
        notes.append(f"since is more than {MAX_SINCE.days} days back; {MAX_SINCE.days} days back "
                     "is used")
        since = now - MAX_SINCE
    with svc.db.read() as session:
        report = triage(session, route, now=now, incident_class=klass.value, since=since,
                        lookback=span)
        warnings = route_warnings(session, route)
    return finite({**report.to_dict(), "warnings": warnings + notes})
