"""Attach events to an incident as evidence, label them, list and count them.

Plain values in, plain values out; the caller writes the timeline entries (each `EvidenceUpdate`
says what changed, e.g. "relabelled ev-1 bad → good").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, select

from llm_incident.events.models import Event
from llm_incident.evidence.models import Evidence, Label
from llm_incident.incidents.models import Incident

MAX_ATTACH = 100
"""Most event ids one `attach` takes."""
MAX_NOTE_CHARS = 2000
_CHUNK = 500


class EvidenceError(ValueError):
    """A request about evidence that cannot be done; the message says why."""


@dataclass(frozen=True)
class EventSummary:
    """What a reply shows of an attached event."""

    ts: datetime
    route: str
    model: str | None
    tokens_in: int | None
    tokens_out: int | None
    duration_ms: float | None
    status: str
    output_excerpt: str | None

    @classmethod
    def of(cls, event: Event) -> EventSummary:
        return cls(ts=event.ts, route=event.route, model=event.model, tokens_in=event.tokens_in,
                   tokens_out=event.tokens_out, duration_ms=event.duration_ms,
                   status=event.status, output_excerpt=event.output_excerpt)


@dataclass(frozen=True)
class EvidenceItem:
    """One attached event; `event` is None when the event is no longer stored."""

    event_id: str
    label: str | None
    note: str | None
    labelled_by: str
    created_at: datetime
    updated_at: datetime
    event: EventSummary | None


@dataclass(frozen=True)
class EvidenceUpdate:
    """A re-attachment or relabelling of evidence that already existed: before and after."""

    event_id: str
    label_before: str | None
    note_before: str | None
    label_after: str | None
    note_after: str | None

    @property
    def changed(self) -> bool:
        return (self.label_before, self.note_before) != (self.label_after, self.note_after)

    def describe(self) -> str:
        """One line for the timeline, e.g. `relabelled ev-1 bad → good`; empty when unchanged."""
        parts = []
        if self.label_before != self.label_after:
            parts.append(f"relabelled {self.event_id} {self.label_before or 'unlabelled'} → "
                         f"{self.label_after or 'unlabelled'}")
        if self.note_before != self.note_after:
            parts.append(f"note on {self.event_id}: {self.note_after or '(none)'}")
        return "; ".join(parts)


@dataclass(frozen=True)
class AttachResult:
    """`attached`: every id now attached (new and re-attached), in the order given;
    `unknown_ids`: ids with no stored event (nothing was stored for them);
    `updated`: the re-attachments among `attached`, with before/after."""

    attached: tuple[EvidenceItem, ...]
    unknown_ids: tuple[str, ...]
    updated: tuple[EvidenceUpdate, ...]

    @property
    def new_ids(self) -> tuple[str, ...]:
        again = {u.event_id for u in self.updated}
        return tuple(item.event_id for item in self.attached if item.event_id not in again)


@dataclass(frozen=True)
class LabelResult:
    """The evidence after `set_label` / `set_note`; `update` is None when it was newly attached."""

    item: EvidenceItem
    update: EvidenceUpdate | None


@dataclass(frozen=True)
class Counts:
    attached: int
    good: int
    bad: int

    @property
    def unlabelled(self) -> int:
        return self.attached - self.good - self.bad


def check_label(label: str | None) -> str | None:
    """`good`, `bad` or None (any case, surrounding blanks ignored); EvidenceError otherwise."""
    if label is None:
        return None
    text = label.strip().lower()
    if text not in (Label.good.value, Label.bad.value):
        raise EvidenceError(f"a label is good or bad, not {label!r}")
    return text


def _clean_note(note: str | None) -> str | None:
    text = (note or "").strip()
    if len(text) > MAX_NOTE_CHARS:
        raise EvidenceError(f"a note is at most {MAX_NOTE_CHARS} characters, not {len(text)}")
    return text or None


def _unique_ids(event_ids: Iterable[str]) -> list[str]:
    ids = list(dict.fromkeys(i.strip() for i in event_ids if i and i.strip()))
    if not ids:
        raise EvidenceError("give at least one event id")
    if len(ids) > MAX_ATTACH:
        raise EvidenceError(f"at most {MAX_ATTACH} event ids at a time, not {len(ids)}")
    return ids


def _events_by_id(session: Session, ids: list[str]) -> dict[str, Event]:
    found: dict[str, Event] = {}
    for i in range(0, len(ids), _CHUNK):
        stmt = select(Event).where(Event.event_id.in_(ids[i : i + _CHUNK]))
        found.update((e.event_id, e) for e in session.exec(stmt))
    return found


def _evidence_by_id(session: Session, incident: Incident, ids: list[str]) -> dict[str, Evidence]:
    found: dict[str, Evidence] = {}
    for i in range(0, len(ids), _CHUNK):
        stmt = select(Evidence).where(Evidence.incident_id == incident.id,
                                      Evidence.event_id.in_(ids[i : i + _CHUNK]))
        found.update((row.event_id, row) for row in session.exec(stmt))
    return found


def _item(row: Evidence, event: Event | None) -> EvidenceItem:
    return EvidenceItem(event_id=row.event_id, label=row.label, note=row.note,
                        labelled_by=row.labelled_by, created_at=row.created_at,
                        updated_at=row.updated_at,
                        event=EventSummary.of(event) if event is not None else None)


def _apply(row: Evidence, label: str | None, note: str | None, actor: str,
           now: datetime) -> EvidenceUpdate:
    """Set the given (non-None) label/note on an existing row; who/when change only on a change."""
    update = EvidenceUpdate(row.event_id, row.label, row.note,
                            label if label is not None else row.label,
                            note if note is not None else row.note)
    if update.changed:
        row.label, row.note = update.label_after, update.note_after
        row.labelled_by, row.updated_at = actor, now
    return update


def _upsert(session: Session, incident: Incident, event_id: str, row: Evidence | None,
            label: str | None, note: str | None, actor: str,
            now: datetime) -> tuple[Evidence, EvidenceUpdate | None]:
    if row is None:
        row = Evidence(incident_id=incident.id, event_id=event_id, label=label, note=note,
                       labelled_by=actor, created_at=now, updated_at=now)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            return row, None
        except IntegrityError:  # attached concurrently: update the row that won
            row = session.exec(select(Evidence).where(
                Evidence.incident_id == incident.id, Evidence.event_id == event_id)).one()
    update = _apply(row, label, note, actor, now)
    session.add(row)
    session.flush()
    return row, update


def attach(
    session: Session, incident: Incident, event_ids: Iterable[str], *,
    label: str | None = None, note: str | None = None, actor: str, now: datetime,
) -> AttachResult:
    """Attach stored events to `incident`; re-attaching sets the label/note given (None keeps the
    current one). Ids with no stored event come back in `unknown_ids`, except evidence already
    attached whose event was since deleted, which is updated like any other."""
    label, note = check_label(label), _clean_note(note)
    ids = _unique_ids(event_ids)
    events = _events_by_id(session, ids)
    existing = _evidence_by_id(session, incident, ids)
    attached: list[EvidenceItem] = []
    unknown: list[str] = []
    updated: list[EvidenceUpdate] = []
    for event_id in ids:
        if event_id not in events and event_id not in existing:
            unknown.append(event_id)
            continue
        row, update = _upsert(session, incident, event_id, existing.get(event_id), label, note,
                              actor, now)
        attached.append(_item(row, events.get(event_id)))
        if update is not None:
            updated.append(update)
    return AttachResult(tuple(attached), tuple(unknown), tuple(updated))


def _set_one(session: Session, incident: Incident, event_id: str, label: str | None,
             note: str | None, actor: str, now: datetime) -> LabelResult:
    result = attach(session, incident, [event_id], label=label, note=note, actor=actor, now=now)
    if result.unknown_ids:
        raise EvidenceError(f"there is no stored event {event_id.strip()!r}")
    return LabelResult(result.attached[0], result.updated[0] if result.updated else None)


def set_label(session: Session, incident: Incident, event_id: str, *, label: str, actor: str,
              now: datetime, note: str | None = None) -> LabelResult:
    """Label one event good or bad in `incident` (attaching it if needed) — the Good/Bad buttons."""
    if check_label(label) is None:
        raise EvidenceError("a label is good or bad")
    return _set_one(session, incident, event_id, label, note, actor, now)


def set_note(session: Session, incident: Incident, event_id: str, note: str, *, actor: str,
             now: datetime) -> LabelResult:
    """Set the note on one event in `incident` (attaching it if needed), keeping its label."""
    if _clean_note(note) is None:
        raise EvidenceError("the note is empty")
    return _set_one(session, incident, event_id, None, note, actor, now)


def evidence_order() -> tuple[ColumnElement, ...]:
    """ORDER BY for evidence: bad, then good, then unlabelled; oldest first within each."""
    rank = case((Evidence.label == Label.bad.value, 0), (Evidence.label == Label.good.value, 1),
                else_=2)
    return rank, Evidence.created_at, Evidence.id


def list_evidence(session: Session, incident: Incident) -> list[EvidenceItem]:
    """The incident's evidence with its events (None where deleted), bad first (see evidence_order)."""
    stmt = (select(Evidence, Event)
            .join(Event, Event.event_id == Evidence.event_id, isouter=True)
            .where(Evidence.incident_id == incident.id)
            .order_by(*evidence_order()))
    return [_item(row, event) for row, event in session.exec(stmt)]


def evidence_counts(session: Session, incident: Incident) -> Counts:
    """How many events are attached to the incident, and how many are labelled good / bad."""
    stmt = select(
        func.count(Evidence.id),
        func.count(case((Evidence.label == Label.good.value, 1))),
        func.count(case((Evidence.label == Label.bad.value, 1))),
    ).where(Evidence.incident_id == incident.id)
    attached, good, bad = session.exec(stmt).one()
    return Counts(attached=attached, good=good, bad=bad)


def labelled_event_ids(session: Session, incident: Incident) -> set[str]:
    """Public ids of the events labelled good or bad in the incident."""
    stmt = select(Evidence.event_id).where(Evidence.incident_id == incident.id,
                                           Evidence.label.is_not(None))
    return set(session.exec(stmt))
