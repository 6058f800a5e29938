"""The durable Slack inbox: a request is stored before it is acked, then processed from the store.

`accept` writes the request and its dedupe key in one short transaction (a retry or a replay
finds the key and is not stored again); the listener acks only after that commit. `InboxRunner`
runs stored requests on its own pool; a request left pending by a crash is taken up again once
its lease ends (at start, then by a sweep every few seconds), up to `MAX_ATTEMPTS` times.

Exactly once: the handler runs inside `first_write_also(...)`, so the request is marked `ran` in
the same transaction as its first write (the kill, the status, the new incident): a crash before
that commit re-runs it; a crash after it does not, and the person gets a short "it was done"
answer instead of the one the crash lost. `done` once the answer is stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from llm_incident.db import Database, first_write_also
from llm_incident.slack.models import InboxRequest, SeenRequest

log = logging.getLogger(__name__)

PENDING, RAN, DONE, FAILED = "pending", "ran", "done", "failed"
OPEN = (PENDING, RAN)  # still owed something: a run (pending) or an answer (ran)
LEASE = timedelta(seconds=15)  # a crashed process's requests resume within this after a restart
MAX_ATTEMPTS = 3
KEEP_DONE = timedelta(days=2)


def accept(db: Database, *, key: str, kind: str, body: dict[str, Any],
           now: datetime) -> InboxRequest | None:
    """Store a new request; None when its key was seen before (a retry or a replay)."""
    try:
        with db.write() as session:
            if session.get(SeenRequest, key) is not None:
                return None
            session.add(SeenRequest(key=key, seen_at=now))
            item = InboxRequest(key=key, kind=kind, body=body, received_at=now,
                                lease_until=now + LEASE)
            session.add(item)
            session.flush()
            return item
    except IntegrityError:  # a concurrent twin stored it first
        return None


def claim(db: Database, item: InboxRequest, *, now: datetime) -> bool:
    """Take the request for one attempt (compare-and-set on `attempts`)."""
    with db.write() as session:
        result = session.connection().execute(
            update(InboxRequest)
            .where(InboxRequest.id == item.id, InboxRequest.status.in_(OPEN),
                   InboxRequest.attempts == item.attempts)
            .values(attempts=item.attempts + 1, lease_until=now + LEASE))
        return result.rowcount == 1


def mark(session: Session, item_id: int | None, status: str, *, now: datetime,
         error: str | None = None) -> None:
    """Move an open request on (to ran, done or failed); a finished one stays as it is."""
    session.connection().execute(
        update(InboxRequest).where(InboxRequest.id == item_id, InboxRequest.status.in_(OPEN))
        .values(status=status, done_at=now, error=error[:2000] if error else None))


def due(db: Database, *, now: datetime, limit: int = 100) -> list[InboxRequest]:
    """Pending requests whose lease ended (their process died, or they never started)."""
    with db.read() as session:
        stmt = (select(InboxRequest)
                .where(InboxRequest.status.in_(OPEN), InboxRequest.lease_until <= now)
                .order_by(InboxRequest.id).limit(limit))
        return list(session.exec(stmt))


def prune(db: Database, *, now: datetime, keep: timedelta = KEEP_DONE) -> int:
    with db.write() as session:
        result = session.connection().execute(
            delete(InboxRequest).where(InboxRequest.status.not_in(OPEN),
                                       InboxRequest.received_at < now - keep))
        return result.rowcount or 0


Handler = Callable[[InboxRequest], None]


class InboxRunner:
    """Runs stored requests with `handler` on a pool of its own (nothing else queues there);
    `answer_ran` answers a request whose effect committed but whose answer a crash lost."""

    def __init__(self, db: Database, handler: Handler, answer_ran: Handler, *,
                 clock: Callable[[], datetime], workers: int = 8,
                 sweep_seconds: float = 2.0) -> None:
        self.db = db
        self.handler = handler
        self.answer_ran = answer_ran
        self.clock = clock
        self.sweep_seconds = sweep_seconds
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slack-inbox")
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._sweeper = threading.Thread(target=self._sweep_loop, daemon=True,
                                         name="llm-incident-slack-inbox")
        self._sweeper.start()

    def stop(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=10)
        self.pool.shutdown(wait=True)  # requests in progress finish; the rest stay pending

    def submit(self, item: InboxRequest) -> None:
        """Run a freshly accepted request now (its lease keeps the sweep away meanwhile)."""
        try:
            self.pool.submit(self._run, item)
        except RuntimeError:  # shutting down: the next start takes it up
            log.info("Slack request %s stored; it runs after the restart", item.key)

    def _sweep_loop(self) -> None:
        passes = 0
        while not self._stop.is_set():
            try:
                for item in due(self.db, now=self.clock()):
                    log.info("resuming Slack request %s (attempt %d)", item.key,
                             item.attempts + 1)
                    self.pool.submit(self._run, item)
                if passes % 1800 == 0:
                    prune(self.db, now=self.clock())
            except RuntimeError:
                return  # pool shut down
            except Exception as exc:  # noqa: BLE001 - e.g. the database restarting: try again
                log.warning("Slack inbox sweep failed (%s); retrying in %.0f s", exc,
                            self.sweep_seconds)
            passes += 1
            self._stop.wait(self.sweep_seconds)

    def _run(self, item: InboxRequest) -> None:
        if not claim(self.db, item, now=self.clock()):
            return  # another worker or process has it
        if item.attempts + 1 > MAX_ATTEMPTS:
            with self.db.write() as session:
                mark(session, item.id, FAILED, now=self.clock(),
                     error=f"gave up after {MAX_ATTEMPTS} attempts")
            log.error("Slack request %s failed %d times; not retried", item.key, MAX_ATTEMPTS)
            return
        error: str | None = None
        try:
            if item.status == RAN:
                self.answer_ran(item)
            else:
                with first_write_also(lambda s: mark(s, item.id, RAN, now=self.clock())):
                    self.handler(item)
        except Exception as exc:  # noqa: BLE001 - the handler told the user; record it
            error = f"{type(exc).__name__}: {exc}"
        with self.db.write() as session:  # read-only requests, and failures, end here
            mark(session, item.id, FAILED if error else DONE, now=self.clock(), error=error)
