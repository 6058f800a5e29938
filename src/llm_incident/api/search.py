"""`GET /v1/events?filter=…&limit=…&order=newest|oldest`: events matching the filter language."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from llm_incident.api.deps import ApiError, require_api_key, services
from llm_incident.metrics.filters import FilterError
from llm_incident.metrics.search import MAX_LIMIT, ORDERS, event_json, search_events

router = APIRouter(dependencies=[Depends(require_api_key)], tags=["events"])


def parse_limit(raw: str | None) -> int:
    """The requested page size (default 100, capped at MAX_LIMIT); 400 unless a whole number ≥ 1."""
    if raw is None:
        return 100
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise ApiError(400, f"limit must be a whole number from 1 (at most {MAX_LIMIT} events "
                            f"are returned), not {raw!r}")
    return min(int(text), MAX_LIMIT)


@router.get("/v1/events")
def get_events(
    request: Request,
    filter_text: str | None = Query(None, alias="filter", description="filter language text"),
    limit: str | None = Query(None, description=f"how many events (default 100, max {MAX_LIMIT})"),
    order: str = Query("newest", description="newest or oldest first"),
) -> dict[str, Any]:
    """Matching events as `{"events": [...], "count": n}`, newest first unless `order=oldest`."""
    if order not in ORDERS:
        raise ApiError(400, f"order must be newest or oldest, not {order!r}")
    size = parse_limit(limit)
    svc = services(request)
    with svc.db.read() as session:
        try:
            rows = search_events(session, filter_text=filter_text, now=svc.clock(), limit=size,
                                 order=order)
        except FilterError as exc:
            raise ApiError(400, f"bad filter at {exc}") from None
        events = [event_json(row) for row in rows]
    return {"events": events, "count": len(events)}
