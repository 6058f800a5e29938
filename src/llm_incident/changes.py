"""The change log: deploys, prompt changes and model changes per route, for triage and postmortems."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field as PField
from sqlmodel import Field, Session, SQLModel, select

from llm_incident.bounds import Text, UtcTimestamp


class ChangeKind(StrEnum):
    deploy = "deploy"
    prompt = "prompt"
    model = "model"
    config = "config"
    other = "other"


class Change(SQLModel, table=True):
    """One recorded change to what a route runs."""

    __tablename__ = "changes"

    id: int | None = Field(default=None, primary_key=True)
    route: str = Field(max_length=200, index=True, nullable=False)
    kind: str = Field(max_length=20, nullable=False)
    description: str = Field(nullable=False)
    ref: str | None = Field(default=None, max_length=500)
    author: str | None = Field(default=None, max_length=200)
    ts: datetime = Field(nullable=False, index=True)
    recorded_at: datetime = Field(nullable=False)


class ChangeIn(BaseModel):
    """What `POST /v1/changes` accepts."""

    model_config = ConfigDict(extra="forbid")

    route: Text = PField(min_length=1, max_length=200)
    kind: ChangeKind
    description: Text = PField(min_length=1, max_length=10_000)
    ref: Text | None = PField(default=None, max_length=500)
    author: Text | None = PField(default=None, max_length=200)
    ts: UtcTimestamp | None = None


def record_change(session: Session, change: ChangeIn, *, now: datetime) -> Change:
    row = Change(
        route=change.route,
        kind=change.kind.value,
        description=change.description,
        ref=change.ref,
        author=change.author,
        ts=change.ts or now,
        recorded_at=now,
    )
    session.add(row)
    session.flush()
    return row


def recent_changes(
    session: Session, routes: list[str], *, until: datetime, lookback: timedelta
) -> list[Change]:
    """Changes for `routes` in `[until - lookback, until]`, newest first."""
    stmt = (
        select(Change)
        .where(Change.route.in_(routes), Change.ts >= until - lookback, Change.ts <= until)
        .order_by(Change.ts.desc(), Change.id.desc())
    )
    return list(session.exec(stmt))
