"""The `evidence` table: an event attached to an incident, with an optional good/bad label and note."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class Label(StrEnum):
    good = "good"
    bad = "bad"


class Evidence(SQLModel, table=True):
    """One event attached to one incident; `event_id` is the event's public id, kept as text so the
    evidence survives the event being deleted (no foreign key to `events`)."""

    __tablename__ = "evidence"
    __table_args__ = (
        UniqueConstraint("incident_id", "event_id", name="uq_evidence_incident_event"),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", nullable=False)
    event_id: str = Field(max_length=200, nullable=False)
    label: str | None = Field(default=None, max_length=10)
    note: str | None = None
    labelled_by: str = Field(max_length=200)
    created_at: datetime = Field(nullable=False)
    updated_at: datetime = Field(nullable=False)
