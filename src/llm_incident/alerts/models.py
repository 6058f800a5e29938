"""Tables of alerting: the last notified level per (rule, route), and every notification sent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class AlertState(SQLModel, table=True):
    """The level last notified for one rule on one route (`ok` until a first notification);
    `pending` holds a warning seen once, notified when the next evaluation sees it too.

    `version` rises with every notification: a notification row is unique per (rule, route,
    version), so two evaluators racing on the same change store (and post) it once.
    """

    __tablename__ = "alert_states"

    rule_id: str = Field(primary_key=True, max_length=100)
    route: str = Field(primary_key=True, max_length=200)
    level: str = Field(default="ok", max_length=10, nullable=False)
    since: datetime = Field(nullable=False)
    notified_at: datetime | None = None
    value: float | None = None
    baseline: float | None = None
    version: int = Field(default=0, nullable=False)
    onset: datetime | None = None  # when the shift behind the level began
    pending: str | None = Field(default=None, max_length=10)  # a warning awaiting confirmation
    pending_since: datetime | None = None


class AlertNotification(SQLModel, table=True):
    """One state change that was notified: ok → warning → critical → resolved."""

    __tablename__ = "alert_notifications"
    __table_args__ = (UniqueConstraint("rule_id", "route", "version",
                                       name="uq_alert_notifications_rule_route_version"),)

    id: int | None = Field(default=None, primary_key=True)
    rule_id: str = Field(max_length=100, nullable=False)
    route: str = Field(max_length=200, nullable=False, index=True)
    version: int = Field(nullable=False)
    metric: str = Field(max_length=40, nullable=False)
    label: str = Field(max_length=100, nullable=False)
    previous_level: str = Field(max_length=10, nullable=False)
    level: str = Field(max_length=10, nullable=False)
    value: float | None = None
    baseline: float | None = None
    calls: int = Field(default=0, nullable=False)
    window: str = Field(max_length=20, nullable=False)
    ts: datetime = Field(nullable=False)
    incident_number: int | None = None  # the open incident whose thread got it
    onset: datetime | None = None  # when the shift began ("since 14:05"); incidents inherit it
    basis: str | None = Field(default=None, max_length=200)  # "vs the last 3 h; no day-ago …"
    reason: str | None = Field(default=None, max_length=200)  # e.g. "not judged: no traffic …"
