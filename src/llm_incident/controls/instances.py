"""Client instances: every SDK `Controls` reports itself with its long-poll; one row per instance.

A report (the `X-LLM-Incident-Instance` header, see the client's `instance.py`) says who the instance is,
which routes it guards and which control version it holds for each, with how long ago it loaded it. The
server turns the age into a time on its own clock, so instances' clocks never matter. An instance is stale
when it has not been heard of for its long-poll wait plus `STALE_GRACE`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, Session, SQLModel, select

MAX_ID_CHARS = 64
MAX_TEXT_CHARS = 100
MAX_ROUTE_CHARS = 200
MAX_ROUTES = 50
MAX_REPORT_CHARS = 16_000
MAX_AGE_SECONDS = 366 * 24 * 3600.0
STALE_GRACE = timedelta(seconds=10)
DEFAULT_WAIT = 25.0


class ClientInstance(SQLModel, table=True):
    """One SDK instance as last reported: identity, routes guarded, versions applied (and when)."""

    __tablename__ = "client_instances"
    __table_args__ = (Index("ix_client_instances_last_seen", "last_seen"),)

    id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    name: str = Field(max_length=MAX_TEXT_CHARS, nullable=False)
    host: str = Field(max_length=MAX_TEXT_CHARS, nullable=False)
    pid: int | None = None
    version: str = Field(max_length=MAX_TEXT_CHARS, nullable=False)
    env: str | None = Field(default=None, max_length=100)  # None: it watches every env
    wait_seconds: float = Field(default=DEFAULT_WAIT, nullable=False)
    routes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # route -> {"version": int, "at": ISO time on the server's clock when the instance loaded it}
    applied: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    first_seen: datetime = Field(nullable=False)
    last_seen: datetime = Field(nullable=False)


@dataclass(frozen=True)
class Report:
    """A parsed instance report; `applied` maps route -> (version, when it was loaded)."""

    id: str
    name: str
    host: str
    pid: int | None
    version: str
    env: str | None
    wait_seconds: float
    routes: tuple[str, ...]
    applied: dict[str, tuple[int, datetime]] = field(default_factory=dict)


def _text(value: str | None, limit: int = MAX_TEXT_CHARS) -> str:
    return "".join(c for c in (value or "") if c.isprintable()).strip()[:limit]


def parse_report(header: str | None, env: str | None, now: datetime) -> Report | None:
    """The report in a header value, or None when there is none or it has no usable id. Never raises:
    unusable parts are dropped (the controls read must not fail for a report)."""
    if not header or len(header) > MAX_REPORT_CHARS:
        return None
    try:
        pairs = parse_qsl(header, keep_blank_values=False, max_num_fields=2 * MAX_ROUTES + 20)
    except ValueError:
        return None
    single: dict[str, str] = {}
    routes: list[str] = []
    applied: dict[str, tuple[int, datetime]] = {}
    for key, value in pairs:
        if key == "route":
            route = _text(value, MAX_ROUTE_CHARS)
            if route and route not in routes and len(routes) < MAX_ROUTES:
                routes.append(route)
        elif key == "applied":
            parsed = _applied(value, now)
            if parsed is not None:
                applied[parsed[0]] = parsed[1]
        else:
            single.setdefault(key, value)
    instance_id = _text(single.get("id"), MAX_ID_CHARS)
    if not instance_id:
        return None
    try:
        pid: int | None = int(single.get("pid", ""))
        if not 0 <= pid < 2 ** 31:
            pid = None
    except ValueError:
        pid = None
    try:
        wait = float(single.get("wait", DEFAULT_WAIT))
        wait = wait if 0 < wait <= 60 else DEFAULT_WAIT
    except ValueError:
        wait = DEFAULT_WAIT
    host = _text(single.get("host")) or "unknown"
    return Report(id=instance_id, name=_text(single.get("name")) or host, host=host, pid=pid,
                  version=_text(single.get("version")) or "unknown", env=_text(env) or None, wait_seconds=wait,
                  routes=tuple(routes), applied={r: a for r, a in applied.items() if r in routes})


def _applied(value: str, now: datetime) -> tuple[str, tuple[int, datetime]] | None:
    """`route@version@age` -> (route, (version, now - age)); None when malformed."""
    parts = value.rsplit("@", 2)
    if len(parts) != 3:
        return None
    route = _text(parts[0], MAX_ROUTE_CHARS)
    try:
        version, age = int(parts[1]), float(parts[2])
    except ValueError:
        return None
    if not route or not 0 <= version < 2 ** 63 or not 0 <= age <= MAX_AGE_SECONDS:
        return None
    return route, (version, now - timedelta(seconds=age))


def record_report(session: Session, report: Report, now: datetime) -> ClientInstance:
    """Insert or refresh the instance's row; a version already known keeps the time it was first loaded."""
    row = session.get(ClientInstance, report.id)
    if row is None:
        row = ClientInstance(id=report.id, name=report.name, host=report.host, version=report.version,
                             first_seen=now, last_seen=now)
    known = row.applied or {}
    applied: dict[str, Any] = {}
    for route, (version, at) in report.applied.items():
        before = known.get(route)
        if isinstance(before, dict) and before.get("version") == version and isinstance(before.get("at"), str):
            applied[route] = before
        else:
            applied[route] = {"version": version, "at": min(at, now).isoformat()}
    row.name, row.host, row.pid, row.version = report.name, report.host, report.pid, report.version
    row.env, row.wait_seconds, row.routes = report.env, report.wait_seconds, list(report.routes)
    row.applied, row.last_seen = applied, now
    session.add(row)
    return row


def is_stale(row: ClientInstance, now: datetime) -> bool:
    """Not heard of for longer than its long-poll wait plus STALE_GRACE."""
    return now - row.last_seen > timedelta(seconds=row.wait_seconds) + STALE_GRACE


def applied_version(row: ClientInstance, route: str) -> tuple[int, datetime] | None:
    """(version, when loaded) the instance holds for `route`, or None when it has not said."""
    entry = (row.applied or {}).get(route)
    if not isinstance(entry, dict):
        return None
    try:
        return int(entry["version"]), datetime.fromisoformat(entry["at"])
    except (KeyError, TypeError, ValueError):
        return None


def list_instances(session: Session, *, env: str | None = None, route: str | None = None,
                   seen_since: datetime | None = None) -> list[ClientInstance]:
    """Instances (of `env`, or watching every env), guarding `route` when given, seen since `seen_since`,
    most recently seen first."""
    stmt = select(ClientInstance).order_by(ClientInstance.last_seen.desc(), ClientInstance.id)
    if seen_since is not None:
        stmt = stmt.where(ClientInstance.last_seen >= seen_since)
    rows = list(session.exec(stmt))
    if env is not None:
        rows = [r for r in rows if r.env in (None, env)]
    if route is not None:
        rows = [r for r in rows if route in (r.routes or [])]
    return rows


def delete_older_than(session: Session, before: datetime) -> int:
    """Forget instances not seen since `before`; how many."""
    rows = list(session.exec(select(ClientInstance).where(ClientInstance.last_seen < before)))
    for row in rows:
        session.delete(row)
    return len(rows)
