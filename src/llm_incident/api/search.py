"""`GET /v1/events?filter=…&limit=…&order=newest|oldest&cursor=…`: events matching the filter
language, a page at a time (keyset pagination: `next` is the cursor of the following page)."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import TypeAdapter, ValidationError

from llm_incident.api.deps import ApiError, needs, services
from llm_incident.api.docs import errors
from llm_incident.api.schemas import EventsPage
from llm_incident.bounds import Positive, UtcTimestamp
from llm_incident.events.models import Event
from llm_incident.metrics.filters import FilterError
from llm_incident.metrics.search import MAX_LIMIT, event_json, search_events

router = APIRouter(dependencies=[needs("read")], responses=errors(403), tags=["events"])
DEFAULT_LIMIT = 100
_POSITION = TypeAdapter(tuple[UtcTimestamp, Positive])


def encode_cursor(event: Event) -> str:
    """An opaque cursor naming the position just after `event`."""
    raw = json.dumps([event.ts.isoformat(), event.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """(ts, id) from a cursor this API handed out; 400 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return _POSITION.validate_json(raw)
    except (ValueError, ValidationError):
        raise ApiError(400, "cursor is not one this API handed out: pass the `next` value of the "
                            "previous page unchanged") from None


@router.get("/v1/events", response_model=None,
            responses={200: {"model": EventsPage}, **errors(400, 401)})
def get_events(
    request: Request,
    filter_text: str | None = Query(None, alias="filter", description="filter language text"),
    limit: Annotated[Positive, Query(description=f"page size (at most {MAX_LIMIT}; larger is "
                                                  "capped and says so)")] = DEFAULT_LIMIT,
    order: Literal["newest", "oldest"] = Query("newest", description="newest or oldest first"),
    cursor: str | None = Query(None, description="the `next` of the previous page (blank: the first)"),
) -> dict[str, Any]:
    """Matching events as `{"events": [...], "count", "limit", "capped", "next"}`."""
    size = min(limit, MAX_LIMIT)
    after = decode_cursor(cursor) if cursor else None
    svc = services(request)
    with svc.db.read() as session:
        try:
            rows = search_events(session, filter_text=filter_text, now=svc.clock(), limit=size,
                                 order=order, after=after)
            last = (rows[-1].ts, rows[-1].id) if len(rows) == size else None
            more = last is not None and bool(search_events(
                session, filter_text=filter_text, now=svc.clock(), limit=1, order=order, after=last))
        except FilterError as exc:
            raise ApiError(400, f"bad filter at {exc}") from None
        events = [event_json(row) for row in rows]
        next_cursor = encode_cursor(rows[-1]) if more else None
    return {"events": events, "count": len(events), "limit": size, "capped": limit > MAX_LIMIT,
            "next": next_cursor}
