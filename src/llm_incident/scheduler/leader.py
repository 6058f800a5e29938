"""Which process runs the scheduled jobs.

PostgreSQL: the holder of a session-level advisory lock, taken with `pg_try_advisory_lock` on a
dedicated connection outside any pool. The lock lives as long as that connection: when the
leader dies (or its connection does), PostgreSQL releases it and the next `is_leader()` of another
process takes it. SQLite: one process serves a database file, so it always leads. A pooler in
transaction mode (PgBouncer) breaks session-level locks: point the service at PostgreSQL itself,
or at a pooler in session mode.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from llm_incident.db import Database

log = logging.getLogger(__name__)
LOCK_KEY = 7_266_244_118_517_812_847  # fixed: every replica must ask for the same lock
# A leader that vanishes without closing its socket (host lost, network cut) must not keep the
# lock for the OS keepalive default (~2 h): the server drops its session after ~25 s of silence
# (tcp_keepalives_* / tcp_user_timeout for this session), and our own checks time out as fast.
LEADER_CONNECT_ARGS = {
    "connect_timeout": 5,
    "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
    "tcp_user_timeout": 25_000,
    "options": "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 "
               "-c tcp_keepalives_count=3 -c tcp_user_timeout=25000 -c statement_timeout=10000",
}


class Leadership:
    """`is_leader()` keeps or tries to take the lead; cheap enough to call before every job."""

    def __init__(self, db: Database, *, lock_key: int = LOCK_KEY) -> None:
        self.db, self.lock_key = db, lock_key
        self._conn: Connection | None = None
        self._engine = None
        self._lock = threading.Lock()

    @property
    def shared(self) -> bool:
        """True when several processes may share the store (PostgreSQL)."""
        return not self.db.is_sqlite

    def is_leader(self) -> bool:
        if not self.shared:
            return True
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute(text("SELECT 1"))
                    return True
                except Exception as exc:  # noqa: BLE001 - the connection is gone: so is the lock
                    log.warning("scheduler: lost the leader connection (%s)", exc)
                    self._close()
            return self._try_take()

    def _try_take(self) -> bool:
        try:
            if self._engine is None:
                self._engine = create_engine(self.db.url, poolclass=NullPool,
                                             isolation_level="AUTOCOMMIT",
                                             connect_args=LEADER_CONNECT_ARGS)
            conn = self._engine.connect()
        except Exception as exc:  # noqa: BLE001 - database down: nobody here leads
            log.warning("scheduler: cannot reach the database to elect a leader (%s)", exc)
            return False
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                    {"key": self.lock_key}).scalar())
        except Exception as exc:  # noqa: BLE001
            log.warning("scheduler: leader election failed (%s)", exc)
            got = False
        if not got:
            conn.close()
            return False
        self._conn = conn
        log.info("scheduler: this process is now the leader")
        return True

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
            self._conn = None

    def release(self) -> None:
        """Give up the lead (closing the connection releases the lock)."""
        with self._lock:
            self._close()
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
