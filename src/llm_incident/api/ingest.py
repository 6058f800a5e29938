"""`POST /v1/events`: batch ingest of LLM call events."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from llm_incident.api.deps import ApiError, Services, needs, parse_json, read_body, services
from llm_incident.api.docs import errors
from llm_incident.api.schemas import IngestAnswer, events_body
from llm_incident.events.ingest import IngestResult, ingest_events, parse_batch_items, parse_valid_batch
from llm_incident.settings import Settings

router = APIRouter()


def batch_items(payload: Any) -> list[Any]:
    """The event list from `{"events": [...]}` or a bare array; 400 otherwise."""
    if isinstance(payload, dict) and "events" in payload:
        unknown = sorted(set(payload) - {"events"})
        if unknown:
            raise ApiError(400, f'unknown top-level key {unknown[0]!r}: send {{"events": [...]}} only')
        payload = payload["events"]
    if not isinstance(payload, list):
        raise ApiError(400, 'expected {"events": [...]} or a JSON array of events')
    return payload


def ingest_items(svc: Services, items: list[Any], source: str) -> IngestResult:
    """Validate and store items in one write transaction; count outcomes for /metrics."""
    with svc.db.write() as session:
        result = ingest_events(
            session, items, now=svc.clock(), excerpt_max_chars=svc.settings.excerpt_max_chars
        )
    svc.metrics.count_ingest(source, result.accepted, result.duplicates, len(result.rejected))
    return result


@router.post("/v1/events", dependencies=[needs("ingest")], tags=["ingest"], response_model=None,
             responses={200: {"model": IngestAnswer}, **errors(400, 401, 403, 413, 415)},
             openapi_extra=events_body(Settings.model_fields["max_batch_events"].default))
async def post_events(request: Request) -> dict[str, Any]:
    """Store a batch; answers `accepted`, `duplicates`, `rejected: [{index, event_id, errors}]`."""
    svc = services(request)
    body = await read_body(request, svc.settings.max_body_bytes)
    items: list[Any] | None = parse_valid_batch(body)
    if items is None:
        items = parse_batch_items(body)
    if items is None:
        items = batch_items(parse_json(body))
    limit = svc.settings.max_batch_events
    if len(items) > limit:
        raise ApiError(413, f"batch has {len(items)} events; the limit is {limit} per request")
    result = await run_in_threadpool(ingest_items, svc, items, "events")
    return result.as_dict()
