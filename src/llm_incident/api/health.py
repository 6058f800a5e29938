"""`GET /healthz` (liveness + a database write probe) and `GET /metrics` (Prometheus)."""

from __future__ import annotations

import sqlite3
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from starlette.concurrency import run_in_threadpool

from llm_incident import __version__
from llm_incident.api.dberrors import RETRY_AFTER, describe
from llm_incident.api.deps import services
from llm_incident.api.schemas import Health, HealthDown
from llm_incident.db import Database

router = APIRouter(tags=["service"])
PROBE_TIMEOUT = 1.0
"""Seconds the write probe waits for a lock or a connection before calling the database down."""


class DatabaseDown(Exception):
    """The write probe failed; the message says why."""


def _sqlite_probe(db: Database) -> None:
    """Take SQLite's write lock and let it go (`BEGIN IMMEDIATE` + `ROLLBACK`) on a connection of
    its own, waiting at most `PROBE_TIMEOUT` for a lock another process holds."""
    path = make_url(db.url).database
    if not path or path == ":memory:":
        with db.read() as session:
            session.execute(text("SELECT 1"))
        return
    try:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=rw", uri=True, timeout=PROBE_TIMEOUT,
                               isolation_level=None)
    except sqlite3.Error as exc:
        raise DatabaseDown(f"cannot open {path}: {exc}") from None
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        raise DatabaseDown(f"not writable within {PROBE_TIMEOUT:g} s: {exc}") from None
    finally:
        conn.close()


@lru_cache(maxsize=8)
def _probe_engine(url: str) -> Engine:
    """A pool-less engine for the probe: a full pool never makes /healthz wait."""
    return create_engine(url, poolclass=NullPool, connect_args={
        "connect_timeout": max(1, round(PROBE_TIMEOUT)),
        "options": f"-c statement_timeout={int(PROBE_TIMEOUT * 1000)}"})


def _postgres_probe(db: Database) -> None:
    """Connect, `SELECT 1`, and refuse a server that cannot take writes (read-only, recovery)."""
    try:
        with _probe_engine(db.url).connect() as conn:
            read_only = conn.execute(text("SHOW transaction_read_only")).scalar()
            recovery = conn.execute(text("SELECT pg_is_in_recovery()")).scalar()
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        raise DatabaseDown(describe(exc)) from None
    if recovery:
        raise DatabaseDown("server is in recovery (a standby): read-only")
    if read_only == "on":
        raise DatabaseDown("transactions are read-only (default_transaction_read_only)")


def write_probe(db: Database) -> None:
    """Raise DatabaseDown unless the database would take a write now (bounded by PROBE_TIMEOUT)."""
    (_sqlite_probe if db.is_sqlite else _postgres_probe)(db)


@router.get("/healthz", response_model=None,
            responses={200: {"model": Health}, 503: {"model": HealthDown,
                                                       "description": "database down or not writable"}})
async def healthz(request: Request) -> JSONResponse:
    """200 when the database would take a write now, 503 with the reason otherwise (SQLite locked
    by another process, PostgreSQL unreachable or read-only); says whether this process runs the
    jobs."""
    svc = services(request)
    try:
        await run_in_threadpool(write_probe, svc.db)
    except DatabaseDown as exc:
        return JSONResponse({"status": "error", "database": str(exc)}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER)})
    scheduler = getattr(request.app.state, "scheduler", None)
    return JSONResponse({"status": "ok", "version": __version__, "database": svc.db.backend,
                         "scheduler": scheduler.status() if scheduler else "off"})


@router.get("/metrics", response_class=Response,
            responses={200: {"description": "Prometheus text exposition format",
                             "content": {"text/plain": {"schema": {"type": "string"}}}}})
def metrics(request: Request) -> Response:
    """The service's own metrics for Prometheus (requests, ingest counts, jobs)."""
    svc = services(request)
    return Response(svc.metrics.render(), media_type=svc.metrics.content_type)
