"""Which events a metrics query covers: route, time window, dimension filters, an extra condition."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_
from sqlalchemy.sql import ColumnElement

from llm_incident.events.models import Event

EVENTS = Event.__table__
C = EVENTS.c

# An event counts as an error when its status is "error" or it carries an error code.
IS_ERROR: ColumnElement[bool] = or_(C.status == "error", C.error_code.is_not(None))
# flagged = status "flagged" or a banned phrase was found.
IS_FLAGGED: ColumnElement[bool] = or_(C.status == "flagged", C.contains_banned)


@dataclass(frozen=True)
class Scope:
    """Equality filters on event dimensions; None means "any"."""

    env: str | None = None
    model: str | None = None
    provider: str | None = None
    region: str | None = None
    customer_tier: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        return [C[name] == value for name, value in asdict(self).items() if value is not None]

    def to_dict(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}


def event_conditions(
    route: str | None,
    start: datetime,
    end: datetime,
    scope: Scope | None = None,
    where: ColumnElement[bool] | None = None,
) -> list[ColumnElement[bool]]:
    """WHERE terms for `route` (None = all routes), `start <= ts < end`, the scope and `where`.

    Route and ts come first so both backends use the (route, ts, …) covering indexes.
    """
    terms: list[ColumnElement[bool]] = []
    if route is not None:
        terms.append(C.route == route)
    terms += [C.ts >= start, C.ts < end]
    if scope is not None:
        terms += scope.conditions()
    if where is not None:
        terms.append(where)
    return terms
