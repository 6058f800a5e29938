"""A reproducible random sample of a route's events from an incident window, for labelling.

How a sample is drawn (the contract `sample <route> [n] [filter]` relies on):
- window: the incident's `started_at` → `closed_at` (or `now` while open). When that window holds
  fewer than `n` candidates, it widens to cover the hour before its end as well (for an open
  incident: the last hour).
- candidates: the route's events in the window that match the filter, minus the events already
  labelled good or bad in this incident (unlabelled evidence can still be sampled).
- the pick: `random.Random(f"{number}:{route}")` samples the candidates' row ids sorted
  ascending, so the same incident, route and data give the same sample.
- cost: only integer row ids travel from the database (found through the route/ts indexes), and
  at most MAX_CANDIDATES of them: fetching ids is what costs (~0.1 s per 50k), and 30 events need
  no more. A window with more matching events is first thinned in SQL to about 1/k of its rows,
  k = ceil(count / MAX_CANDIDATES): those whose scrambled row id `(id * 48271) mod (2^31 - 1)`
  is r mod k, r drawn from the same seeded generator. The scramble keeps batch-ingest patterns in
  row ids from biasing the pick; the thinned set still spans the whole window, never just its
  newest part.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, cast, func
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, select

from llm_incident.events.models import Event
from llm_incident.evidence.models import Evidence
from llm_incident.evidence.service import EvidenceError
from llm_incident.incidents.models import Incident
from llm_incident.metrics.filter_ast import Node
from llm_incident.metrics.filters import compile_filter

DEFAULT_SAMPLE = 20
MAX_SAMPLE = 30
MAX_CANDIDATES = 50_000
FALLBACK_WINDOW = timedelta(hours=1)
_SCRAMBLE_MULTIPLIER, _SCRAMBLE_MODULUS = 48271, 2_147_483_647  # a Lehmer step; prime modulus


def sample_window(incident: Incident, now: datetime) -> tuple[datetime, datetime]:
    """The incident window: started_at → closed_at, or → now while it is open."""
    end = incident.closed_at or now
    return incident.started_at, max(end, incident.started_at)


def _labelled_row_ids(session: Session, incident: Incident) -> set[int]:
    stmt = (select(Event.id)
            .join(Evidence, Evidence.event_id == Event.event_id)
            .where(Evidence.incident_id == incident.id, Evidence.label.is_not(None)))
    return set(session.exec(stmt))


def _candidates(session: Session, conditions: list[ColumnElement[bool]], excluded: set[int],
                rng: random.Random) -> list[int]:
    total = session.exec(select(func.count()).select_from(Event).where(*conditions)).one()
    if total > MAX_CANDIDATES:
        stride = -(-total // MAX_CANDIDATES)
        scrambled = (cast(Event.id, BigInteger) * _SCRAMBLE_MULTIPLIER) % _SCRAMBLE_MODULUS
        conditions = [*conditions, scrambled % stride == rng.randrange(stride)]
    stmt = select(Event.id).where(*conditions).limit(MAX_CANDIDATES)
    ids = session.connection().execute(stmt).scalars().all()  # plain ints, no ORM rows
    return sorted(set(ids) - excluded)


def sample_events(
    session: Session, incident: Incident, *, route: str, n: int = DEFAULT_SAMPLE,
    filter_where: str | Node | None = None, now: datetime,
) -> list[Event]:
    """Up to `n` (at most MAX_SAMPLE) unlabelled events of `route`, oldest first (see module doc).

    Raises EvidenceError for `n` below 1 and FilterError for a bad filter.
    """
    if n < 1:
        raise EvidenceError(f"sample at least 1 event, not {n}")
    n = min(n, MAX_SAMPLE)
    conditions: list[ColumnElement[bool]] = [Event.route == route]
    if isinstance(filter_where, str) and not filter_where.strip():
        filter_where = None
    if filter_where is not None:
        conditions.append(compile_filter(filter_where, now=now))
    start, end = sample_window(incident, now)
    excluded = _labelled_row_ids(session, incident)
    rng = random.Random(f"{incident.number}:{route}")
    ids = _candidates(session, [*conditions, Event.ts >= start, Event.ts <= end], excluded, rng)
    if len(ids) < n and end - start < FALLBACK_WINDOW:
        start = end - FALLBACK_WINDOW
        rng = random.Random(f"{incident.number}:{route}")
        ids = _candidates(session, [*conditions, Event.ts >= start, Event.ts <= end], excluded, rng)
    picked = rng.sample(ids, min(n, len(ids)))
    if not picked:
        return []
    stmt = select(Event).where(Event.id.in_(picked)).order_by(Event.ts, Event.id)
    return list(session.exec(stmt))
