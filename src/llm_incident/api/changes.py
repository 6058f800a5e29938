"""`POST /v1/changes` records a deploy / prompt / model change; `GET /v1/changes` lists them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from llm_incident.api.deps import ApiError, needs, parse_json, read_body, services
from llm_incident.api.docs import errors, json_body
from llm_incident.api.schemas import ChangeAnswer, ChangesAnswer
from llm_incident.changes import Change, ChangeIn, recent_changes, record_change
from llm_incident.events.ingest import validation_errors

router = APIRouter(tags=["changes"])


def change_json(row: Change) -> dict[str, Any]:
    return {
        "id": row.id,
        "route": row.route,
        "kind": row.kind,
        "description": row.description,
        "ref": row.ref,
        "author": row.author,
        "ts": row.ts.isoformat(),
    }


@router.post("/v1/changes", status_code=201, response_model=None, dependencies=[needs("ingest")],
             responses={201: {"model": ChangeAnswer}, **errors(400, 401, 403, 413, 415)},
             openapi_extra=json_body(ChangeIn))
async def post_change(request: Request) -> dict[str, Any]:
    """Record one change `{route, kind, description, ref?, author?, ts?}`."""
    svc = services(request)
    payload = parse_json(await read_body(request, svc.settings.max_body_bytes))
    try:
        change = ChangeIn.model_validate(payload)
    except ValidationError as exc:
        errors = validation_errors(exc)
        text = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ApiError(400, f"invalid change: {text}") from None

    def save() -> dict[str, Any]:
        with svc.db.write() as session:
            return change_json(record_change(session, change, now=svc.clock()))

    return await run_in_threadpool(save)


@router.get("/v1/changes", response_model=None, dependencies=[needs("read")],
            responses={200: {"model": ChangesAnswer}, **errors(400, 401, 403)})
def get_changes(
    request: Request,
    route: list[str] = Query(..., description="route(s) to list changes for"),
    hours: float = Query(24, gt=0, le=24 * 90, description="how far back to look"),
) -> dict[str, Any]:
    """Changes for the given routes in the last `hours`, newest first."""
    svc = services(request)
    with svc.db.read() as session:
        rows = recent_changes(session, route, until=svc.clock(), lookback=timedelta(hours=hours))
        return {"changes": [change_json(r) for r in rows]}
