"""Window totals from rollups: whole minutes from `event_rollups`, the rest from raw events.

Counts, sums, rates, error codes and the model mix are exact (the raw events at the window's
edges and after the rollups' `complete_until` are read as they are); percentiles come from the
merged DDSketch buckets plus the edge values, within `RELATIVE_ACCURACY` of the exact
nearest-rank value. None (the caller takes the exact path) when the rollups cannot answer:
the job has not caught up, the whole-minute part is empty, or the edges are too long.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from llm_incident.metrics.percentiles import raw_rows
from llm_incident.metrics.scope import C, Scope
from llm_incident.rollups.build import OTHER_MODEL, MinuteGroup, complete_until, floor_minute
from llm_incident.rollups.models import EventRollup
from llm_incident.rollups.sketch import RELATIVE_ACCURACY, Merged

APPROX_NOTE = f"≈, ±{RELATIVE_ACCURACY:.0%}".replace("%", " %")
MAX_RAW_EDGES = timedelta(hours=1)  # longer raw parts (a stalled job): the exact path instead
_ROLLUP_SCOPE = ("env", "model")
_MINUTE = timedelta(minutes=1)
R = EventRollup.__table__.c

_exact_max: list[timedelta] = []


@lru_cache(maxsize=1)
def _configured_exact_max() -> timedelta:
    from llm_incident.settings import load_settings

    return load_settings().exact_window_max


def exact_window_max() -> timedelta:
    """Windows up to this long are exact (LLM_INCIDENT_EXACT_WINDOW_MAX, read once)."""
    return _exact_max[-1] if _exact_max else _configured_exact_max()


def set_exact_window_max(span: timedelta | None) -> None:
    """Override the threshold in this process (None: back to the setting)."""
    _exact_max.clear()
    if span is not None:
        _exact_max.append(span)


def eligible(scope: Scope | None, where: object) -> bool:
    """Whether rollups can answer: no `where`, and the scope only narrows env and model."""
    if where is not None:
        return False
    return scope is None or all(name in _ROLLUP_SCOPE or value is None
                                for name, value in vars(scope).items())


@dataclass
class Totals:
    """Everything a WindowStats needs, summed over rollups and raw edges."""

    calls: int = 0
    flagged: int = 0
    errors: int = 0
    retries: int = 0
    priced: int = 0
    cost: float = 0.0
    n_in: int = 0
    sum_in: int = 0
    n_out: int = 0
    sum_out: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    models: Counter[str | None] = field(default_factory=Counter)
    durations: Merged = field(default_factory=Merged)
    tokens_in: Merged = field(default_factory=Merged)
    tokens_out: Merged = field(default_factory=Merged)


def _ceil_minute(value: datetime) -> datetime:
    floor = floor_minute(value)
    return floor if floor == value else floor + _MINUTE


_SUMS = (func.sum(R.calls), func.sum(R.flagged), func.sum(R.errors), func.sum(R.retries),
         func.sum(R.priced), func.sum(R.cost_usd), func.sum(R.n_tokens_in),
         func.sum(R.sum_tokens_in), func.sum(R.n_tokens_out), func.sum(R.sum_tokens_out))
_PARTS = (R.errors, case((R.errors > 0, R.error_codes)), R.duration_sketch, R.tokens_in_sketch,
          R.tokens_out_sketch)  # codes only where there are errors: no JSON to decode otherwise


def _add_rollups(session: Session, totals: Totals, route: str | None, start: datetime,
                 end: datetime, scope: Scope | None) -> bool:
    """Add the rollup rows of minutes in `[start, end)`: sums per model in SQL, then the error
    codes and sketches row by row. False when a model filter meets a minute whose small models
    were folded together (the exact path answers that)."""
    conditions = [R.minute >= start, R.minute < end]
    if route is not None:
        conditions.insert(0, R.route == route)
    if scope is not None and scope.env is not None:
        conditions.append(R.env == scope.env)
    if scope is not None and scope.model is not None:
        conditions.append(R.model.in_((scope.model, OTHER_MODEL)))
    by_model = raw_rows(session, select(R.model, *_SUMS).where(*conditions).group_by(R.model))
    if scope is not None and scope.model is not None and any(
            row[0] != scope.model for row in by_model):
        return False
    if scope is not None and scope.model is not None:
        conditions[-1] = R.model == scope.model
    for model, calls, flagged, errors, retries, priced, cost, n_in, s_in, n_out, s_out in by_model:
        totals.calls += calls
        totals.flagged += flagged
        totals.errors += errors
        totals.retries += retries
        totals.priced += priced
        totals.cost += cost or 0.0
        totals.n_in += n_in
        totals.sum_in += int(s_in)
        totals.n_out += n_out
        totals.sum_out += int(s_out)
        totals.models[model] += calls
    durations, tokens_in, tokens_out = totals.durations, totals.tokens_in, totals.tokens_out
    for errors, codes, duration, t_in, t_out in raw_rows(session, select(*_PARTS).where(*conditions)):
        if errors:
            totals.codes.update(codes if isinstance(codes, dict) else json.loads(codes))
        durations.add(duration)
        tokens_in.add(t_in)
        tokens_out.add(t_out)
    return True


_RAW_COLUMNS = (C.model, C.status, C.contains_banned, C.error_code, C.attempt, C.priced,
                C.cost_usd, C.tokens_in, C.tokens_out, C.duration_ms)


def _add_raw(session: Session, totals: Totals, route: str | None, start: datetime,
             end: datetime, scope: Scope | None) -> None:
    """Add the raw events of `[start, end)` exactly as they are."""
    if start >= end:
        return
    conditions = [C.ts >= start, C.ts < end] + ([] if scope is None else scope.conditions())
    if route is not None:
        conditions.insert(0, C.route == route)
    groups: dict[str | None, MinuteGroup] = {}
    for model, *values in raw_rows(session, select(*_RAW_COLUMNS).where(*conditions)):
        group = groups.get(model)
        if group is None:
            group = groups[model] = MinuteGroup()
        group.add_row(*values)
    for model, g in groups.items():
        totals.calls += g.calls
        totals.flagged += g.flagged
        totals.errors += g.errors
        totals.retries += g.retries
        totals.priced += g.priced
        totals.cost += g.cost
        totals.n_in += len(g.tokens_in)
        totals.sum_in += sum(g.tokens_in)
        totals.n_out += len(g.tokens_out)
        totals.sum_out += sum(g.tokens_out)
        totals.codes.update(g.codes)
        totals.models[model] += g.calls
        totals.durations.add_values(g.durations)
        totals.tokens_in.add_values(g.tokens_in)
        totals.tokens_out.add_values(g.tokens_out)


def rollup_totals(session: Session, route: str | None, start: datetime, end: datetime,
                  scope: Scope | None = None) -> Totals | None:
    """Totals of `[start, end)` from rollups and raw edges; None when rollups cannot answer."""
    until = complete_until(session)
    if until is None:
        return None
    first, last = _ceil_minute(start), min(floor_minute(end), until)
    if last <= first or (first - start) + (end - last) > MAX_RAW_EDGES:
        return None
    totals = Totals()
    if not _add_rollups(session, totals, route, first, last, scope):
        return None
    _add_raw(session, totals, route, start, first, scope)
    _add_raw(session, totals, route, last, end, scope)
    return totals
