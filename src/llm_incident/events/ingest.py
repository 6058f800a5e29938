"""Batch ingest: validate each event, price and redact it, store new ones, count duplicates."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from llm_incident.events.models import Event
from llm_incident.events.pricing import cost_usd
from llm_incident.events.redact import excerpt
from llm_incident.events.schema import EventIn

_TABLE = Event.__table__
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


@dataclass
class Rejection:
    index: int
    event_id: str | None
    errors: list[dict[str, str]]


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    unpriced: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [r.__dict__ for r in self.rejected],
            "unpriced": self.unpriced,
        }


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic errors as `{field, message}` pairs a person can act on."""
    out = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(event)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (see the event fields in the README)"
        out.append({"field": loc, "message": msg})
    return out


def to_row(event: EventIn, *, now: datetime, excerpt_max_chars: int) -> dict[str, Any]:
    """The stored form of a validated event: defaults filled, cost computed, excerpts redacted."""
    ts = event.ts or now
    cost = event.cost_usd
    if cost is None:
        cost = cost_usd(event.model, event.provider, event.tokens_in, event.tokens_out, ts)
    return {
        "event_id": event.event_id or uuid.uuid4().hex,
        "ts": ts,
        "received_at": now,
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
        "cost_usd": cost,
        "priced": cost is not None,
        "prompt_id": event.prompt_id,
        "prompt_version": event.prompt_version,
        "attempt": event.attempt,
        "metadata": event.metadata,
        "input_excerpt": excerpt(event.input_excerpt, excerpt_max_chars),
        "output_excerpt": excerpt(event.output_excerpt, excerpt_max_chars),
    }


def validate_batch(
    items: list[Any], *, now: datetime, excerpt_max_chars: int
) -> tuple[list[dict[str, Any]], IngestResult]:
    """Rows for the valid items (first occurrence of an id wins) and the result so far."""
    result = IngestResult()
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            err = {"field": "(event)", "message": "each event must be a JSON object"}
            result.rejected.append(Rejection(index, None, [err]))
            continue
        try:
            event = EventIn.model_validate(item)
        except ValidationError as exc:
            raw_id = item.get("event_id")
            result.rejected.append(
                Rejection(index, raw_id if isinstance(raw_id, str) else None, validation_errors(exc))
            )
            continue
        row = to_row(event, now=now, excerpt_max_chars=excerpt_max_chars)
        if row["event_id"] in seen:
            result.duplicates += 1
            continue
        seen.add(row["event_id"])
        rows.append(row)
    return rows, result


def store_rows(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert rows, skipping event_ids already stored; returns the ids actually inserted."""
    if not rows:
        return set()
    insert = _INSERTS[session.get_bind().dialect.name]
    stmt = insert(_TABLE).on_conflict_do_nothing(index_elements=["event_id"])
    stmt = stmt.returning(_TABLE.c.event_id)
    return set(session.execute(stmt, rows).scalars())


def ingest_events(
    session: Session, items: list[Any], *, now: datetime, excerpt_max_chars: int = 2000
) -> IngestResult:
    """Validate and store a batch in the caller's transaction; invalid items never block valid ones."""
    rows, result = validate_batch(items, now=now, excerpt_max_chars=excerpt_max_chars)
    inserted = store_rows(session, rows)
    result.accepted = len(inserted)
    result.duplicates += len(rows) - len(inserted)
    result.unpriced = sum(1 for r in rows if not r["priced"] and r["event_id"] in inserted)
    return result
