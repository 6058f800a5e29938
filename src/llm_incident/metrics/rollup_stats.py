"""Window totals from rollups: whole UTC days from `event_rollups_daily`, whole hours at the day
edges from `event_rollups_hourly`, whole minutes at the hour edges from `event_rollups`, raw events
at the minute edges (and after the rollups' `complete_until`).

Counts, sums, rates, error codes and the model mix are exact (raw edges are read as they are);
percentiles come from the merged DDSketch buckets plus the edge values, within
`RELATIVE_ACCURACY` of the exact nearest-rank value. `rollup_buckets` does the same for many
consecutive windows (a chart's buckets) in one query per table, `routes_rollup_buckets` for every
route at once (the dashboard overview); `route_counts` gives calls and
flagged calls per route and bucket (sparklines) from grouped queries. None (the caller takes the
exact path) when the rollups cannot answer: the job has not caught up, no whole minute is
covered, or the raw parts are too long.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable
from functools import lru_cache

from sqlalchemy import Select, and_, case, func, literal, select, union_all
from sqlalchemy.orm import Session

from llm_incident.metrics.percentiles import raw_rows
from llm_incident.metrics.scope import C, IS_FLAGGED, Scope
from llm_incident.rollups.build import MinuteGroup, complete_until, floor_minute
from llm_incident.rollups.hours import ceil_day, ceil_hour, floor_day, floor_hour
from llm_incident.rollups.models import OTHER_MODEL, EventRollup, EventRollupDay, EventRollupHour
from llm_incident.rollups.sketch import RELATIVE_ACCURACY, Merged

APPROX_NOTE = f"≈, ±{RELATIVE_ACCURACY:.0%}".replace("%", " %")
MAX_RAW_EDGES = timedelta(hours=1)  # longer raw parts (a stalled job): the exact path instead
_ROLLUP_SCOPE = ("env", "model")
_MINUTE = timedelta(minutes=1)
MINUTES = EventRollup.__table__.c
HOURS = EventRollupHour.__table__.c
DAYS = EventRollupDay.__table__.c

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

    def add_rollup(self, model: str | None, calls: int, flagged: int, errors: int, retries: int,
                   priced: int, cost: float | None, n_in: int, s_in: int, n_out: int, s_out: int,
                   codes: Any, duration: bytes | None, t_in: bytes | None,
                   t_out: bytes | None) -> None:
        """Add one rollup row (minute, hour or day)."""
        self.calls += calls
        self.flagged += flagged
        self.errors += errors
        self.retries += retries
        self.priced += priced
        self.cost += cost or 0.0
        self.n_in += n_in
        self.sum_in += int(s_in)
        self.n_out += n_out
        self.sum_out += int(s_out)
        self.models[model] += calls
        if errors:
            self.codes.update(codes if isinstance(codes, dict) else json.loads(codes))
        self.durations.add(duration)
        self.tokens_in.add(t_in)
        self.tokens_out.add(t_out)

    def add_group(self, model: str | None, g: MinuteGroup) -> None:
        """Add raw events gathered in a MinuteGroup."""
        self.calls += g.calls
        self.flagged += g.flagged
        self.errors += g.errors
        self.retries += g.retries
        self.priced += g.priced
        self.cost += g.cost
        self.n_in += len(g.tokens_in)
        self.sum_in += sum(g.tokens_in)
        self.n_out += len(g.tokens_out)
        self.sum_out += sum(g.tokens_out)
        self.codes.update(g.codes)
        self.models[model] += g.calls
        self.durations.add_values(g.durations)
        self.tokens_in.add_values(g.tokens_in)
        self.tokens_out.add_values(g.tokens_out)


def _ceil_minute(value: datetime) -> datetime:
    floor = floor_minute(value)
    return floor if floor == value else floor + _MINUTE


Span = tuple[datetime, datetime]


@dataclass
class Plan:
    """Where each bucket's numbers come from: `(bucket, start, end)` parts of each source."""

    days: list[tuple[int, datetime, datetime]] = field(default_factory=list)
    hours: list[tuple[int, datetime, datetime]] = field(default_factory=list)
    minutes: list[tuple[int, datetime, datetime]] = field(default_factory=list)
    raw: list[tuple[int, datetime, datetime]] = field(default_factory=list)

    def raw_span(self, now: datetime | None = None) -> timedelta:
        """How long the raw parts are (up to `now`: later ones hold no events yet)."""
        ends = [b if now is None else min(b, now) for _i, _a, b in self.raw]
        return sum((max(end - a, timedelta()) for (_i, a, _b), end in zip(self.raw, ends, strict=True)),
                   timedelta())


def plan(edges: list[datetime], until: datetime) -> Plan:
    """Split the buckets between consecutive `edges`: whole days before `until` from day rows,
    whole hours from hour rows, whole minutes from minute rows, the rest (sub-minute edges, after
    `until`) from raw events."""
    out = Plan()
    for i, (start, end) in enumerate(zip(edges, edges[1:], strict=False)):
        first, last = _ceil_minute(start), min(floor_minute(end), until)
        if last <= first:
            out.raw.append((i, start, end))
            continue
        out.raw += [(i, a, b) for a, b in ((start, first), (last, end)) if a < b]
        h1, h2 = ceil_hour(first), floor_hour(last)
        if h1 < h2:
            d1, d2 = ceil_day(h1), floor_day(h2)
            if d1 < d2:
                out.days.append((i, d1, d2))
                out.hours += [(i, a, b) for a, b in ((h1, d1), (d2, h2)) if a < b]
            else:
                out.hours.append((i, h1, h2))
            out.minutes += [(i, a, b) for a, b in ((first, h1), (h2, last)) if a < b]
        else:
            out.minutes.append((i, first, last))
    return out


_SPANS_PER_STATEMENT = 100  # SELECTs per UNION ALL (SQLite allows 500 in one compound)


def _spans(parts: list[tuple[int, datetime, datetime]]
           ) -> list[tuple[datetime, datetime, list[tuple[int, datetime, datetime]]]]:
    """The parts as time spans (adjacent parts joined), each with the parts it holds."""
    spans: list[tuple[datetime, datetime, list[tuple[int, datetime, datetime]]]] = []
    for part in sorted(parts, key=lambda p: p[1]):
        if spans and spans[-1][1] == part[1]:
            spans[-1] = (spans[-1][0], part[2], [*spans[-1][2], part])
        else:
            spans.append((part[1], part[2], [part]))
    return spans


def _per_span(column: Any, parts: list[tuple[int, datetime, datetime]],
              build: Callable[[Any, Any], Select[Any]]) -> list[Any]:
    """Statements reading the parts: `build(inside, bucket)` for each span (`inside` bounds
    `column` to it, `bucket` its rows' bucket) joined with UNION ALL. Not one OR of the ranges:
    SQLite then reads the route's whole index range instead of each span's."""
    selects = [build(and_(column >= a, column < b), _bucket(column, held))
               for a, b, held in _spans(parts)]
    chunks = [selects[k:k + _SPANS_PER_STATEMENT]
              for k in range(0, len(selects), _SPANS_PER_STATEMENT)]
    return [chunk[0] if len(chunk) == 1 else union_all(*chunk) for chunk in chunks]


def _bucket(column: Any, parts: list[tuple[int, datetime, datetime]]) -> Any:
    """The bucket of a row inside the parts: that of the first part (by time) ending after it."""
    ordered = sorted(parts, key=lambda p: p[1])
    if len({i for i, _a, _b in ordered}) == 1:
        return literal(ordered[0][0])
    return case(*((column < b, i) for i, _a, b in ordered[:-1]), else_=ordered[-1][0])


def _rollup_conditions(table: Any, route: str | None, scope: Scope | None) -> list[Any]:
    conditions = [] if route is None else [table.route == route]
    if scope is not None and scope.env is not None:
        conditions.append(table.env == scope.env)
    if scope is not None and scope.model is not None:
        conditions.append(table.model.in_((scope.model, OTHER_MODEL)))
    return conditions


def _rollup_columns(table: Any) -> tuple[Any, ...]:
    return (table.model, table.calls, table.flagged, table.errors, table.retries, table.priced,
            table.cost_usd, table.n_tokens_in, table.sum_tokens_in, table.n_tokens_out,
            table.sum_tokens_out, case((table.errors > 0, table.error_codes)),
            table.duration_sketch, table.tokens_in_sketch, table.tokens_out_sketch)
    # codes only where there are errors: no JSON to decode otherwise


Sink = Callable[[str, int], Totals]  # (route, bucket) → the Totals its rows are added to


def _add_rollups(session: Session, sink: Sink, table: Any, route: str | None,
                 parts: list[tuple[int, datetime, datetime]], scope: Scope | None) -> bool:
    """Add the rows of `table` inside the parts to their sink. False when a model filter
    meets rows whose small models were folded together (the exact path answers that)."""
    if not parts:
        return True
    conditions = _rollup_conditions(table, route, scope)
    wanted = None if scope is None else scope.model
    for stmt in _per_span(table.minute, parts, lambda inside, bucket: select(
            table.route, bucket, *_rollup_columns(table)).where(*conditions, inside)):
        for name, i, model, *values in raw_rows(session, stmt):
            if wanted is not None and model != wanted:
                return False
            sink(name, int(i)).add_rollup(model, *values)
    return True


_RAW_COLUMNS = (C.model, C.status, C.contains_banned, C.error_code, C.attempt, C.priced,
                C.cost_usd, C.tokens_in, C.tokens_out, C.duration_ms)


def _add_raw(session: Session, sink: Sink, route: str | None,
             parts: list[tuple[int, datetime, datetime]], scope: Scope | None) -> None:
    """Add the raw events inside the parts to their sink, exactly as they are."""
    if not parts:
        return
    conditions = ([] if route is None else [C.route == route]) + (
        [] if scope is None else scope.conditions())
    groups: dict[tuple[str, int, str | None], MinuteGroup] = {}
    for stmt in _per_span(C.ts, parts, lambda inside, bucket: select(
            C.route, bucket, *_RAW_COLUMNS).where(*conditions, inside)):
        for name, i, model, *values in raw_rows(session, stmt):
            group = groups.get((name, i, model))
            if group is None:
                group = groups[(name, i, model)] = MinuteGroup()
            group.add_row(*values)
    for (name, i, model), g in groups.items():
        sink(name, int(i)).add_group(model, g)


def _answerable(session: Session, edges: list[datetime], now: datetime | None) -> Plan | None:
    until = complete_until(session)
    if until is None:
        return None
    split = plan(edges, until)
    if not (split.days or split.hours or split.minutes) or split.raw_span(now) > MAX_RAW_EDGES:
        return None
    return split


def rollup_buckets(session: Session, route: str | None, edges: list[datetime],
                   scope: Scope | None = None, *, now: datetime | None = None
                   ) -> list[Totals] | None:
    """Totals of each bucket between consecutive `edges` from rollups and raw edges (one query
    per source); None when rollups cannot answer. `now`: raw parts after it (a chart's last
    bucket reaching into the future) do not count against `MAX_RAW_EDGES`."""
    split = _answerable(session, edges, now)
    if split is None:
        return None
    buckets = [Totals() for _ in edges[1:]]
    if not _fill(session, lambda _route, i: buckets[i], route, split, scope):
        return None
    return buckets


def _fill(session: Session, sink: Sink, route: str | None, split: Plan,
          scope: Scope | None) -> bool:
    """Days, hours, minutes, then raw edges into `sink`; False when the rollups cannot answer."""
    if not (_add_rollups(session, sink, DAYS, route, split.days, scope)
            and _add_rollups(session, sink, HOURS, route, split.hours, scope)
            and _add_rollups(session, sink, MINUTES, route, split.minutes, scope)):
        return False
    _add_raw(session, sink, route, split.raw, scope)
    return True


def routes_rollup_buckets(session: Session, edges: list[datetime], scope: Scope | None = None,
                          *, now: datetime | None = None) -> dict[str, list[Totals]] | None:
    """`rollup_buckets` of every route at once (the same queries, not narrowed to a route):
    route → Totals per bucket, for the routes with rows there; None when rollups cannot
    answer."""
    split = _answerable(session, edges, now)
    if split is None:
        return None
    out: dict[str, list[Totals]] = {}

    def sink(route: str, i: int) -> Totals:
        buckets = out.get(route)
        if buckets is None:
            buckets = out[route] = [Totals() for _ in edges[1:]]
        return buckets[i]

    return out if _fill(session, sink, None, split, scope) else None


def rollup_totals(session: Session, route: str | None, start: datetime, end: datetime,
                  scope: Scope | None = None) -> Totals | None:
    """Totals of `[start, end)` from rollups and raw edges; None when rollups cannot answer."""
    buckets = rollup_buckets(session, route, [start, end], scope)
    return None if buckets is None else buckets[0]


def route_counts(session: Session, edges: list[datetime], *, now: datetime | None = None
                 ) -> dict[str, list[list[int]]] | None:
    """route → [calls, flagged] per bucket between consecutive `edges`, every route, from grouped
    queries over the rollups (raw events at the edges); None when rollups cannot answer."""
    split = _answerable(session, edges, now)
    if split is None:
        return None
    counts: dict[str, list[list[int]]] = {}
    statements = []
    for table, parts in ((DAYS, split.days), (HOURS, split.hours), (MINUTES, split.minutes)):
        statements += _per_span(table.minute, parts, lambda inside, bucket, t=table: select(
            t.route, bucket, func.sum(t.calls), func.sum(t.flagged))
            .where(inside).group_by(t.route, bucket))
    statements += _per_span(C.ts, split.raw, lambda inside, bucket: select(
        C.route, bucket, func.count(), func.sum(case((IS_FLAGGED, 1), else_=0)))
        .where(inside).group_by(C.route, bucket))
    for stmt in statements:
        for route, i, calls, flagged in raw_rows(session, stmt):
            row = counts.setdefault(route, [[0, 0] for _ in edges[1:]])
            row[int(i)][0] += int(calls)
            row[int(i)][1] += int(flagged or 0)
    return counts
