"""The `events` table: one row per LLM call the application reported."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

STATUSES = ("ok", "flagged", "error")
MetadataJSON = JSON().with_variant(JSONB(), "postgresql")


class Event(SQLModel, table=True):
    """An LLM call as stored; `meta` is the event's `metadata` object (column `metadata`)."""

    __tablename__ = "events"
    __table_args__ = (
        # Per-route time windows; the trailing columns make p95 scans index-only.
        Index("ix_events_route_ts_duration", "route", "ts", "duration_ms"),
        Index("ix_events_route_ts_tokens_out", "route", "ts", "tokens_out"),
        Index("ix_events_ts", "ts"),
        # Every column metrics.stats aggregates: window stats read the index alone (0002).
        Index(
            "ix_events_route_ts_stats", "route", "ts", "status", "contains_banned", "error_code",
            "model", "attempt", "priced", "cost_usd", "tokens_in", "tokens_out", "duration_ms",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=200, unique=True, nullable=False)
    ts: datetime = Field(nullable=False)
    received_at: datetime = Field(nullable=False)
    route: str = Field(max_length=200, nullable=False)
    env: str = Field(default="prod", max_length=100, nullable=False)
    model: str | None = Field(default=None, max_length=200)
    provider: str | None = Field(default=None, max_length=100)
    region: str | None = Field(default=None, max_length=100)
    customer_tier: str | None = Field(default=None, max_length=100)
    tokens_in: int | None = None
    tokens_out: int | None = None
    duration_ms: float | None = None
    status: str = Field(default="ok", max_length=16, nullable=False)
    error_code: str | None = Field(default=None, max_length=100)
    contains_banned: bool = Field(default=False, nullable=False)
    cost_usd: float | None = None
    priced: bool = Field(default=False, nullable=False)
    prompt_id: str | None = Field(default=None, max_length=200)
    prompt_version: str | None = Field(default=None, max_length=100)
    attempt: int = Field(default=1, nullable=False)
    meta: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", MetadataJSON, nullable=False)
    )
    input_excerpt: str | None = None
    output_excerpt: str | None = None
