"""The postmortem as it was at the close, stored with the close (table `postmortem_snapshots`).

A closed incident's postmortem is read from here, never recompiled: later control changes, late
events or labels do not rewrite it. One row per incident, replaced at every close (a reopened and
reclosed incident freezes at its last close); the row remembers which close it belongs to.

`store(session, incident, pm)` writes it; `thaw(session, incident)` gives it back (None when the
incident is open, or was closed before snapshots existed); `from_dict` rebuilds a `Postmortem`
from its `to_dict()` form (unknown keys ignored, missing ones defaulted).
"""

from __future__ import annotations

import types
from dataclasses import MISSING, fields, is_dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Union, get_args, get_origin, get_type_hints

from sqlalchemy import JSON, Column
from sqlmodel import Field, Session, SQLModel

from llm_incident.incidents.models import Incident
from llm_incident.incidents.postmortem_model import Postmortem

FORMAT = 1  # the shape of `data`; a reader of a newer format recompiles instead


class PostmortemSnapshot(SQLModel, table=True):
    """The compiled postmortem of an incident at its (last) close."""

    __tablename__ = "postmortem_snapshots"

    incident_id: int = Field(primary_key=True, foreign_key="incidents.id")
    closed_at: datetime = Field(nullable=False)
    format: int = Field(default=FORMAT, nullable=False)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def store(session: Session, incident: Incident, pm: Postmortem) -> None:
    """Keep `pm` as the incident's postmortem at this close (replacing an earlier close's)."""
    if incident.closed_at is None:
        raise ValueError(f"incident #{incident.number} is not closed: nothing to freeze")
    row = session.get(PostmortemSnapshot, incident.id)
    if row is None:
        row = PostmortemSnapshot(incident_id=incident.id, closed_at=incident.closed_at)
    row.closed_at, row.format, row.data = incident.closed_at, FORMAT, pm.to_dict()
    session.add(row)
    session.flush()


def thaw(session: Session, incident: Incident) -> Postmortem | None:
    """The postmortem frozen at the incident's current close; None when there is none."""
    if incident.closed_at is None:
        return None
    row = session.get(PostmortemSnapshot, incident.id)
    if row is None or row.format != FORMAT or _utc(row.closed_at) != _utc(incident.closed_at):
        return None
    pm = from_dict(dict(row.data))
    pm.frozen = True
    return pm


def from_dict(data: dict[str, Any]) -> Postmortem:
    """A `Postmortem` from `Postmortem.to_dict()` (the inverse, for every stored field)."""
    return _revive(Postmortem, data)


def _revive(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        return _revive(options[0], value) if options else value
    if origin is list:
        (item,) = get_args(tp) or (Any,)
        return [_revive(item, v) for v in value]
    if origin is dict:
        return dict(value)
    if tp is datetime:
        return datetime.fromisoformat(value)
    if tp is timedelta:
        return timedelta(seconds=value)
    if isinstance(tp, type) and is_dataclass(tp):
        hints = get_type_hints(tp)
        kwargs = {}
        for f in fields(tp):
            if not f.init:
                continue
            if f.name in value:
                kwargs[f.name] = _revive(hints[f.name], value[f.name])
            elif f.default is MISSING and f.default_factory is MISSING:
                kwargs[f.name] = None
        return tp(**kwargs)
    return value
