"""The rollup tables — `event_rollups` (one row per route × minute × env × model),
`event_rollups_hourly` (the same per hour, merged from the minute rows) and `event_rollups_daily`
(per UTC day, merged from the hour rows) — and the builder's state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, LargeBinary
from sqlmodel import Field, SQLModel

MAX_GROUPS = 50  # (env, model) pairs per route and minute (or hour); the smaller rest fold into OTHER_MODEL
OTHER_MODEL = "(other)"


class _Aggregates(SQLModel):
    """The columns the rollup tables share (`minute`: the first minute of the minute, hour or day the
    row covers)."""

    id: int | None = Field(default=None, primary_key=True)
    route: str = Field(max_length=200, nullable=False)
    minute: datetime = Field(nullable=False)
    env: str = Field(max_length=100, nullable=False)
    model: str | None = Field(default=None, max_length=200)
    calls: int = Field(nullable=False)
    flagged: int = Field(nullable=False)
    errors: int = Field(nullable=False)
    retries: int = Field(nullable=False)
    priced: int = Field(nullable=False)
    cost_usd: float = Field(nullable=False)
    n_tokens_in: int = Field(nullable=False)
    sum_tokens_in: int = Field(sa_type=BigInteger, nullable=False)
    n_tokens_out: int = Field(nullable=False)
    sum_tokens_out: int = Field(sa_type=BigInteger, nullable=False)
    error_codes: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=False)
    duration_sketch: bytes | None = Field(default=None, sa_type=LargeBinary)
    tokens_in_sketch: bytes | None = Field(default=None, sa_type=LargeBinary)
    tokens_out_sketch: bytes | None = Field(default=None, sa_type=LargeBinary)


class EventRollup(_Aggregates, table=True):
    """What one minute of one route's calls in one env and model add up to; `*_sketch` are
    `rollups.sketch` encodings (None: no event reported that column)."""

    __tablename__ = "event_rollups"
    __table_args__ = (
        Index("ix_event_rollups_route_minute", "route", "minute"),
        Index("ix_event_rollups_minute", "minute"),
    )


class EventRollupHour(_Aggregates, table=True):
    """One hour (`minute` = the hour's first minute) of one route, env and model: the sum of its
    minute rows, sketches merged (`rollups.hours` keeps it in step with them)."""

    __tablename__ = "event_rollups_hourly"
    __table_args__ = (
        Index("ix_event_rollups_hourly_route_minute", "route", "minute"),
        Index("ix_event_rollups_hourly_minute", "minute"),
    )


class EventRollupDay(_Aggregates, table=True):
    """One UTC day (`minute` = its midnight) of one route, env and model: the sum of its hour rows,
    sketches merged (`rollups.hours` keeps it in step with them)."""

    __tablename__ = "event_rollups_daily"
    __table_args__ = (
        Index("ix_event_rollups_daily_route_minute", "route", "minute"),
        Index("ix_event_rollups_daily_minute", "minute"),
    )


class RollupState(SQLModel, table=True):
    """How far the rollup job got: events up to `last_id` are rolled up, and minutes before
    `complete_until` hold every event received up to the job's last run (None: not caught up)."""

    __tablename__ = "rollup_state"

    name: str = Field(primary_key=True, max_length=50)
    last_id: int = Field(sa_type=BigInteger, nullable=False)
    complete_until: datetime | None = None
    updated_at: datetime = Field(nullable=False)
