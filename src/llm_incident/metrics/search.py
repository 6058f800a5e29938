"""Event search: the one query the API, Slack, console, alerts and postmortem use to list events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_
from sqlmodel import Session, select

from llm_incident.events.models import Event
from llm_incident.metrics.filter_ast import Node
from llm_incident.metrics.filters import compile_filter

MAX_LIMIT = 1000
ORDERS = ("newest", "oldest")


def search_events(
    session: Session,
    *,
    filter_text: str | Node | None,
    now: datetime,
    limit: int = 100,
    order: str = "newest",
    route: str | None = None,
    after: tuple[datetime, int] | None = None,
) -> list[Event]:
    """Events matching the filter (and `route`, when given), newest or oldest first.

    `limit` is capped at MAX_LIMIT; a blank filter matches everything; `after` = (ts, id) of the
    last event of the previous page (keyset pagination, in `order`). Raises FilterError for a
    bad filter and ValueError for a bad `order` or a `limit` below 1.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be newest or oldest, not {order!r}")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    stmt = select(Event)
    if route is not None:
        stmt = stmt.where(Event.route == route)
    if isinstance(filter_text, str) and not filter_text.strip():
        filter_text = None
    if filter_text is not None:
        stmt = stmt.where(compile_filter(filter_text, now=now))
    if after is not None:
        ts, row_id = after
        if order == "newest":
            stmt = stmt.where(or_(Event.ts < ts, and_(Event.ts == ts, Event.id < row_id)))
        else:
            stmt = stmt.where(or_(Event.ts > ts, and_(Event.ts == ts, Event.id > row_id)))
    if order == "newest":
        stmt = stmt.order_by(Event.ts.desc(), Event.id.desc())
    else:
        stmt = stmt.order_by(Event.ts.asc(), Event.id.asc())
    return list(session.exec(stmt.limit(min(limit, MAX_LIMIT))))


def event_json(event: Event) -> dict[str, Any]:
    """An event as the API and exports show it: public fields, times in ISO 8601, `metadata`."""
    return {
        "event_id": event.event_id,
        "ts": event.ts.isoformat(),
        "received_at": event.received_at.isoformat(),
        "route": event.route,
        "env": event.env,
        "model": event.model,
        "provider": event.provider,
        "region": event.region,
        "customer_tier": event.customer_tier,
        "tokens_in": event.tokens_in,
        "tokens_out": event.tokens_out,
        "duration_ms": event.duration_ms,
        "status": event.status,
        "error_code": event.error_code,
        "contains_banned": event.contains_banned,
        "cost_usd": event.cost_usd,
        "priced": event.priced,
        "prompt_id": event.prompt_id,
        "prompt_version": event.prompt_version,
        "attempt": event.attempt,
        "metadata": event.meta,
        "input_excerpt": event.input_excerpt,
        "output_excerpt": event.output_excerpt,
    }
