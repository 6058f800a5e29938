"""`GET /v1/incidents/{n}/postmortem`: the incident's postmortem as Markdown, or its data as JSON."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from llm_incident.api.deps import ApiError, needs, services
from llm_incident.api.docs import errors
from llm_incident.api.schemas import PostmortemData
from llm_incident.bounds import Positive
from llm_incident.incidents.postmortem import compile_postmortem, render_markdown
from llm_incident.incidents.service import IncidentError

router = APIRouter(dependencies=[needs("read")], responses=errors(403), tags=["postmortem"])
MARKDOWN = "text/markdown; charset=utf-8"


@router.get("/v1/incidents/{number}/postmortem", response_class=Response,
            responses={200: {"description": "Markdown by default; the data with `format=json`",
                             "content": {"text/markdown": {"schema": {"type": "string"}},
                                         "application/json": {"schema": PostmortemData.model_json_schema()}}},
                       **errors(400, 401, 404)})
def get_postmortem(
    request: Request, number: Annotated[Positive, Path(examples=[1])],
    format: Literal["markdown", "json"] = Query("markdown",  # noqa: A002 - the query name
                                                description="markdown, or json for the data"),
) -> Response:
    """The postmortem (a draft as of now while the incident is open); 404 if no such incident."""
    svc = services(request)
    with svc.db.read() as session:
        try:
            pm = compile_postmortem(session, number, now=svc.clock())
        except IncidentError:
            raise ApiError(404, f"there is no incident #{number}") from None
    if format == "json":
        body: dict[str, Any] = pm.to_dict()
        return JSONResponse(body)
    return Response(render_markdown(pm), media_type=MARKDOWN)
