"""What every command handler is given: who asked, where, when (`Context`), and where posts go
(`Delivery`). Kept apart from the core so that handler modules never import the core back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlmodel import Session

from llm_incident.commands.replies import Post
from llm_incident.incidents.models import Incident


@dataclass(frozen=True)
class Context:
    """Who asked, where, and when; `request_key` identifies the request for deduplication.
    `user_name` is the name the adapter knows (Slack's user name), kept in the audit; `via` is
    how the request came: "typed", "button" or "form" (a closed incident's buttons are inert)."""

    user: str
    channel: str | None
    now: datetime
    thread_ts: str | None = None
    request_key: str | None = None
    user_name: str | None = None
    via: str = "typed"


class Delivery(Protocol):
    """Stores posts for delivery inside the caller's transaction."""

    def enqueue(self, session: Session, posts: list[Post]) -> None: ...

    def refresh_card(self, session: Session, incident: Incident) -> None: ...


def panel_key(incident: int, route: str) -> str:
    """The outbox key of a route's control panel in an incident's thread (replaced in place)."""
    return f"incident:{incident}:panel:{route}"
