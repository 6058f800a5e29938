"""Database trouble answered honestly: 503 `{"error": …}` with `Retry-After`, one log line.

A locked SQLite file, a PostgreSQL backend terminated or restarting, a read-only standby, an
exhausted pool: the request could succeed later, so it is a 503 the client may retry, never a
500 with a traceback. The answer is a normal response (the connection stays usable); the log gets
one line per distinct problem per `LOG_EVERY` seconds, with a count of the repeats it held back.
The engine's `pool_pre_ping` (PostgreSQL) and SQLite's reconnects make recovery automatic.
"""

from __future__ import annotations

import logging
import threading
import time

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

log = logging.getLogger("llm_incident.db")

RETRY_AFTER = 1
"""Seconds a client is asked to wait before retrying a request that met database trouble."""
LOG_EVERY = 10.0

TRANSIENT = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
             sa_exc.DisconnectionError, sa_exc.InternalError)
"""Exception classes that mean "the database cannot serve this now" (read-only or restarting
PostgreSQL raises InternalError subclasses such as ReadOnlySqlTransaction)."""

READ_ONLY = "25006"
_TRANSIENT_SQLSTATES = ("08", READ_ONLY, "40001", "40P01", "53", "57")


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is database trouble a retry can get past (not a bug or bad data)."""
    if not isinstance(exc, TRANSIENT):
        return False
    if isinstance(exc, sa_exc.InternalError) and not exc.connection_invalidated:
        state = getattr(exc.orig, "sqlstate", None) or ""
        return state.startswith(_TRANSIENT_SQLSTATES)
    return True


def describe(exc: BaseException) -> str:
    """One line saying what went wrong, without SQL or parameters."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split()) or type(orig).__name__
    return f"{type(orig).__name__}: {text}"[:300]


class _OneLine:
    """Logs each distinct message at most once per `every` seconds, counting what it held back."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}

    def warn(self, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            last, held = self._last.get(message, (float("-inf"), 0))
            if now - last < self.every:
                self._last[message] = (last, held + 1)
                return
            if len(self._last) > 100:
                self._last.clear()
            self._last[message] = (now, 0)
        more = f" (and {held} more like it)" if held else ""
        log.warning("database unavailable, answered 503: %s%s", message, more)


_log = _OneLine(LOG_EVERY)


def unavailable(message: str) -> JSONResponse:
    return JSONResponse({"error": f"database unavailable, retry later: {message}"}, status_code=503,
                        headers={"Retry-After": str(RETRY_AFTER)})


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    """Exception handler for SQLAlchemy errors: transient ones are 503 + Retry-After, logged in one
    line; anything else is a 500 `{"error"}` (logged with its traceback, once per request)."""
    if is_transient(exc):
        message = describe(exc)
        _log.warn(message)
        if getattr(getattr(exc, "orig", None), "sqlstate", None) == READ_ONLY:
            # a failed-over primary: its pooled sessions stay read-only, and pre-ping cannot tell
            request.app.state.services.db.engine.dispose()
        return unavailable(message)
    log.error("database error", exc_info=exc)
    return JSONResponse({"error": "internal error while talking to the database"}, status_code=500)


UNAVAILABLE_RESPONSE = {
    503: {"description": "database unavailable (locked, restarting, read-only): retry after "
                         "`Retry-After` seconds",
          "content": {"application/json": {"schema": {
              "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}}},
          "headers": {"Retry-After": {"schema": {"type": "integer"},
                                      "description": "seconds to wait before retrying"}}},
}
"""The `responses=` entry every router of the API declares for `database_error`'s 503."""
