"""What the scheduler posts, for the console: a thread-safe `Delivery` that keeps the posts and
card refreshes of the jobs (mitigation checks, expiries, nudges, triage refreshes) until the
console prints them. Alert posts are left out: the console shows alerts from the store (alerts)."""

from __future__ import annotations

import threading

from sqlmodel import Session

from llm_incident.commands.context import Delivery
from llm_incident.commands.replies import Post
from llm_incident.incidents.models import Incident

ALERT_KEY = "alert:"


class ConsoleFeed:
    """`enqueue`/`refresh_card` from any thread; `drain()` from the console's. `also` (e.g. the
    Slack outbox) gets everything as well."""

    def __init__(self, also: Delivery | None = None) -> None:
        self.also = also
        self._lock = threading.Lock()
        self._posts: list[Post] = []
        self._cards: list[int] = []

    def enqueue(self, session: Session, posts: list[Post]) -> None:
        if self.also is not None:
            self.also.enqueue(session, posts)
        with self._lock:
            self._posts.extend(p for p in posts if not (p.key or "").startswith(ALERT_KEY))

    def refresh_card(self, session: Session, incident: Incident) -> None:
        if self.also is not None:
            self.also.refresh_card(session, incident)
        with self._lock:
            self._cards.append(incident.number)

    def drain(self) -> tuple[list[Post], list[int]]:
        with self._lock:
            posts, cards = self._posts, list(dict.fromkeys(self._cards))
            self._posts, self._cards = [], []
        return posts, cards
