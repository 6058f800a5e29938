"""The idempotency table of scheduled sends: one row per (job, slot), claimed before sending."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class JobSlot(SQLModel, table=True):
    """A job's occurrence that has run, e.g. ("status-nudge", "7:2026-11-26T14:00:00+00:00:2")."""

    __tablename__ = "job_slots"

    job: str = Field(primary_key=True, max_length=50)
    slot: str = Field(primary_key=True, max_length=200)
    done_at: datetime = Field(nullable=False)
