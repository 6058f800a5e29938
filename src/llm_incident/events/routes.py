"""The registry of known routes, updated by ingest and read by Slack pickers and controls."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session, SQLModel, select


class KnownRoute(SQLModel, table=True):
    """Every route that has sent an event, kept current by ingest (cheap to list, no scan)."""

    __tablename__ = "routes"

    route: str = Field(primary_key=True, max_length=200)
    first_seen: datetime = Field(nullable=False)
    last_seen: datetime = Field(nullable=False)


_TABLE = KnownRoute.__table__
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def note_routes(session: Session, rows: list[dict[str, Any]]) -> None:
    """Record the routes of freshly stored rows (first/last seen by event time)."""
    spans: dict[str, tuple[datetime, datetime]] = {}
    for row in rows:
        first, last = spans.get(row["route"], (row["ts"], row["ts"]))
        spans[row["route"]] = (min(first, row["ts"]), max(last, row["ts"]))
    if not spans:
        return
    insert = _INSERTS[session.get_bind().dialect.name](_TABLE)
    stmt = insert.on_conflict_do_update(
        index_elements=["route"],
        set_={
            "first_seen": case(
                (insert.excluded.first_seen < _TABLE.c.first_seen, insert.excluded.first_seen),
                else_=_TABLE.c.first_seen,
            ),
            "last_seen": case(
                (insert.excluded.last_seen > _TABLE.c.last_seen, insert.excluded.last_seen),
                else_=_TABLE.c.last_seen,
            ),
        },
    )
    params = [{"route": r, "first_seen": f, "last_seen": l} for r, (f, l) in sorted(spans.items())]
    session.execute(stmt, params)


def known_routes(session: Session) -> list[str]:
    """All routes ever seen, alphabetically."""
    return list(session.exec(select(KnownRoute.route).order_by(KnownRoute.route)))


def is_known_route(session: Session, route: str) -> bool:
    return session.get(KnownRoute, route) is not None


def seen_values(session: Session, route: str, column: str, *, since: datetime,
                limit: int = 25) -> list[str]:
    """Distinct non-null values of `column` (e.g. model, provider) on a route since a time."""
    from llm_incident.events.models import Event

    col = Event.__table__.c[column]
    stmt = (select(col).where(Event.__table__.c.route == route, Event.__table__.c.ts >= since,
                              col.is_not(None))
            .group_by(col).order_by(col).limit(limit))
    return [value for (value,) in session.execute(stmt)]
