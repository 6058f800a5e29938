"""Labelled evidence as rows ready to seed an eval set: JSON Lines or CSV.

A row is the incident number, the label, note, labeller and times, then the event's fields as the
API shows them (`metrics.search.event_json`); event fields are null when the event was deleted.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from sqlmodel import Session, select

from llm_incident.events.models import Event
from llm_incident.evidence.models import Evidence
from llm_incident.evidence.service import evidence_order
from llm_incident.incidents.models import Incident
from llm_incident.metrics.search import event_json

EVIDENCE_COLUMNS = ("incident", "event_id", "label", "note", "labelled_by", "attached_at",
                    "labelled_at")
EVENT_COLUMNS = (
    "ts", "received_at", "route", "env", "model", "provider", "region", "customer_tier",
    "tokens_in", "tokens_out", "duration_ms", "status", "error_code", "contains_banned",
    "cost_usd", "priced", "prompt_id", "prompt_version", "attempt", "metadata", "input_excerpt",
    "output_excerpt",
)
COLUMNS = EVIDENCE_COLUMNS + EVENT_COLUMNS
"""Every row has exactly these keys, in this order (JSON objects and CSV header alike)."""
FORMATS = ("jsonl", "csv")


def export_row(number: int, evidence: Evidence, event: Event | None) -> dict[str, Any]:
    """One evidence row in COLUMNS order."""
    row: dict[str, Any] = {
        "incident": number,
        "event_id": evidence.event_id,
        "label": evidence.label,
        "note": evidence.note,
        "labelled_by": evidence.labelled_by,
        "attached_at": evidence.created_at.isoformat(),
        "labelled_at": evidence.updated_at.isoformat(),
    }
    fields = event_json(event) if event is not None else {}
    row.update((name, fields.get(name)) for name in EVENT_COLUMNS)
    return row


def export_rows(session: Session, incident: Incident | None = None) -> list[dict[str, Any]]:
    """The evidence of `incident` (None: of every incident, by number), bad, then good, then
    unlabelled within each incident."""
    stmt = (select(Incident.number, Evidence, Event)
            .join(Incident, Incident.id == Evidence.incident_id)
            .join(Event, Event.event_id == Evidence.event_id, isouter=True))
    if incident is not None:
        stmt = stmt.where(Evidence.incident_id == incident.id)
    stmt = stmt.order_by(Incident.number, *evidence_order())
    return [export_row(number, evidence, event) for number, evidence, event in session.exec(stmt)]


def to_jsonl(rows: Iterable[dict[str, Any]]) -> str:
    """One JSON object per line (UTF-8 text, not ASCII-escaped), keys in COLUMNS order."""
    return "".join(
        json.dumps({name: row.get(name) for name in COLUMNS}, ensure_ascii=False) + "\n"
        for row in rows
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def to_csv(rows: Iterable[dict[str, Any]]) -> str:
    """CSV with a header of COLUMNS; null → empty, booleans true/false, metadata as a JSON string."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in COLUMNS])
    return out.getvalue()


def render(rows: Iterable[dict[str, Any]], fmt: str) -> str:
    """`to_jsonl` or `to_csv` by name (one of FORMATS)."""
    if fmt == "jsonl":
        return to_jsonl(rows)
    if fmt == "csv":
        return to_csv(rows)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
