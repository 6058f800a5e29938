"""Tables of the Slack adapter: the outbox, seen request ids, the inbox of acked requests, and
replies to the person who asked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel


class OutboxMessage(SQLModel, table=True):
    """A Slack message to post or update; delivered at least once, deduplicated by `key`.

    `kind`: root (the incident's summary card), thread (a reply in its thread), origin (the
    channel the command came from), card (re-render the summary card and `chat.update` it).
    """

    __tablename__ = "slack_outbox"
    __table_args__ = (Index("ix_slack_outbox_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True, nullable=False)
    kind: str = Field(max_length=20, nullable=False)
    incident_number: int | None = Field(default=None, index=True)
    channel: str | None = Field(default=None, max_length=50)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=20, nullable=False)  # pending|sent|dead
    attempts: int = Field(default=0, nullable=False)
    next_attempt_at: datetime = Field(nullable=False)
    last_error: str | None = None
    result_ts: str | None = Field(default=None, max_length=50)
    created_at: datetime = Field(nullable=False)
    sent_at: datetime | None = None


class SeenRequest(SQLModel, table=True):
    """Ids of Slack requests already handled (retries and replays are answered, not re-run)."""

    __tablename__ = "slack_seen_requests"

    key: str = Field(primary_key=True, max_length=200)
    seen_at: datetime = Field(nullable=False, index=True)


class InboxRequest(SQLModel, table=True):
    """A Slack request stored before its ack: processed from here, so an ack is never lost.

    `status`: pending (to run, or running while `lease_until` is ahead), done, failed.
    """

    __tablename__ = "slack_inbox"
    __table_args__ = (Index("ix_slack_inbox_status", "status", "lease_until"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True, nullable=False)
    kind: str = Field(max_length=20, nullable=False)  # command|action|view|shortcut
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=20, nullable=False)
    attempts: int = Field(default=0, nullable=False)
    lease_until: datetime | None = None
    received_at: datetime = Field(nullable=False)
    done_at: datetime | None = None
    error: str | None = None


class ReplyMessage(SQLModel, table=True):
    """An answer to the person who asked (response_url, ephemeral, or DM), delivered durably.

    `payload`: message, response_url, ephemeral, user, channel, thread_ts. A response_url is
    used until `expires_at` (Slack keeps it 30 minutes); after that, or when it fails for good,
    the answer goes as an ephemeral message, else a DM.
    """

    __tablename__ = "slack_replies"
    __table_args__ = (Index("ix_slack_replies_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True, nullable=False)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=20, nullable=False)  # pending|sent|dead
    attempts: int = Field(default=0, nullable=False)
    next_attempt_at: datetime = Field(nullable=False)
    expires_at: datetime | None = None
    via: str | None = Field(default=None, max_length=20)  # response_url|ephemeral|channel|dm
    last_error: str | None = None
    created_at: datetime = Field(nullable=False)
    sent_at: datetime | None = None
