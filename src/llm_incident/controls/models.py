"""Tables for route controls (current state per route and env) and their audit history."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel


class Outcome(StrEnum):
    """What became of a requested change (`unchanged` is answered but never stored)."""

    applied = "applied"
    unchanged = "unchanged"
    refused = "refused"
    conflict = "conflict"


class ChangeKind(StrEnum):
    change = "change"  # asked for by a person or a script
    expiry = "expiry"  # written by `revert_expired` when a temporary change ran out


class RouteControl(SQLModel, table=True):
    """The controls in force for one route in one env; absent row = defaults at version 0."""

    __tablename__ = "route_controls"
    __table_args__ = (Index("ix_route_controls_expires_at", "expires_at"),)

    route: str = Field(primary_key=True, max_length=200)
    env: str = Field(primary_key=True, max_length=100)
    enabled: bool = Field(default=True, nullable=False)
    max_tokens: int | None = None
    model: str | None = Field(default=None, max_length=200)
    provider: str | None = Field(default=None, max_length=200)
    retry_cap: int | None = None
    fallback_message: str | None = Field(default=None, max_length=2000)
    expires_at: datetime | None = None
    version: int = Field(default=1, nullable=False)
    updated_at: datetime = Field(nullable=False)
    updated_by: str = Field(max_length=200, nullable=False)


class ControlChange(SQLModel, table=True):
    """One audited attempt to change a route's controls: who, why, before → after, and what came of it."""

    __tablename__ = "control_changes"
    __table_args__ = (Index("ix_control_changes_route_env_id", "route", "env", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    route: str = Field(max_length=200, nullable=False)
    env: str = Field(max_length=100, nullable=False)
    kind: str = Field(default=ChangeKind.change.value, max_length=20, nullable=False)
    fields: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    before: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    after: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    actor: str = Field(max_length=200, nullable=False)
    actor_name: str | None = Field(default=None, max_length=200)  # e.g. the Slack user's name
    reason: str = Field(default="", nullable=False)
    incident: int | None = Field(default=None, index=True)
    ts: datetime = Field(nullable=False)
    version: int = Field(nullable=False)
    outcome: str = Field(max_length=20, nullable=False)
    expires_at: datetime | None = None
