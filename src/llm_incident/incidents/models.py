"""Tables for incidents and their timelines."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel


class IncidentClass(StrEnum):
    quality = "quality"
    latency = "latency"
    cost = "cost"
    provider = "provider"
    unknown = "unknown"


class IncidentStatus(StrEnum):
    open = "open"
    mitigated = "mitigated"
    closed = "closed"


class Severity(StrEnum):
    sev1 = "sev1"
    sev2 = "sev2"
    sev3 = "sev3"
    sev4 = "sev4"


class Incident(SQLModel, table=True):
    """One incident; `version` increases on every change (compare-and-set for concurrent edits)."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_channel_status", "channel_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    number: int = Field(unique=True, nullable=False)
    incident_class: str = Field(default=IncidentClass.unknown.value, max_length=20)
    severity: str = Field(default=Severity.sev2.value, max_length=10)
    status: str = Field(default=IncidentStatus.open.value, max_length=20)
    symptom: str = Field(default="")
    routes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    envs: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    customer_tiers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    channel_id: str | None = Field(default=None, max_length=50)
    origin_channel_id: str | None = Field(default=None, max_length=50)
    thread_ts: str | None = Field(default=None, max_length=50)
    commander: str = Field(max_length=50)
    started_at: datetime = Field(nullable=False)  # when it was declared
    onset_at: datetime | None = None  # when it began (detected, `since`, or the alert's onset)
    onset_source: str | None = Field(default=None, max_length=30)  # detected | since | alert
    mitigated_at: datetime | None = None
    closed_at: datetime | None = None
    updated_at: datetime = Field(nullable=False)
    summary: str | None = None
    request_key: str | None = Field(default=None, max_length=200, unique=True)
    version: int = Field(default=1, nullable=False)


class TimelineEntry(SQLModel, table=True):
    """Something that happened in an incident: who, when, what, before → after."""

    __tablename__ = "timeline_entries"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True, nullable=False)
    ts: datetime = Field(nullable=False)
    actor: str = Field(max_length=50)
    actor_name: str | None = Field(default=None, max_length=200)  # e.g. the Slack user's name
    kind: str = Field(max_length=30)
    text: str = Field(default="")
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
