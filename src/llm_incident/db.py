"""Engine and session helpers: SQLite (WAL, write transactions take the lock up front) or PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session

_WRITE_OPTION = "llm_incident_write"
log = logging.getLogger("llm_incident.db")
_FIRST_WRITE: ContextVar[Callable[[Session], None] | None] = ContextVar("llm_incident_first_write",
                                                                      default=None)


@contextmanager
def first_write_also(hook: Callable[[Session], None]) -> Iterator[None]:
    """Inside the block, the first `Database.write()` transaction also runs `hook(session)` just
    before it commits: what the block did and the hook's record of it commit together (the Slack
    inbox marks a request done in the transaction of its effect)."""
    token = _FIRST_WRITE.set(hook)
    try:
        yield
    finally:
        _FIRST_WRITE.reset(token)


def normalize_url(url: str) -> str:
    """Map `postgres://` / `postgresql://` to the psycopg 3 driver; leave others alone."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _configure_sqlite(engine: Engine) -> None:
    """WAL, busy timeout, and `BEGIN IMMEDIATE` for write transactions.

    A deferred transaction that reads and then writes can fail at once with "database is locked";
    taking the write lock at BEGIN makes writers queue on busy_timeout instead.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every sqlite test
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """One engine per process; `read()` and `write()` hand out sessions with the right transaction."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalize_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict = {"echo": echo}
        if not self.is_sqlite:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=10)
        self.engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self.write_engine = self.engine.execution_options(**{_WRITE_OPTION: True})
        self.commit_hooks: list[Callable[[Session], None]] = []
        """Called with the session after each `write()` commits (its `info` says what changed); errors are
        logged, never raised."""

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; rolled back at the end."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with Session(self.write_engine, expire_on_commit=False) as session:
            with session.begin():
                yield session
                hook = _FIRST_WRITE.get()
                if hook is not None:
                    _FIRST_WRITE.set(None)
                    hook(session)
            for hook in list(self.commit_hooks):
                try:
                    hook(session)
                except Exception:  # noqa: BLE001 - a hook must not fail a committed write
                    log.exception("after-commit hook %r failed", hook)

    def dispose(self) -> None:
        self.engine.dispose()
