"""Blast radius: which envs, customer tiers, regions and models of a route moved at the onset, and
which other routes shifted at the same onset (± `ONSET_TOLERANCE`).

- Windows (`comparison_windows`): after = `[onset, now)`; before = the same length just before the
  onset, at least `MIN_BEFORE` and at most the lookback. The report's metric deltas use them too.
- Each dimension value with at least `MIN_SHARE` of the calls after the onset (at most
  `MAX_VALUES` per dimension) gets the stat before → after, over at most `VALUES_SPAN` each side
  of the onset, from one read of the per-call samples (`sample_expression`) aggregated as
  `metrics.stats` defines the stat (nearest-rank p95 ignoring NULLs, shares of calls, means, cost
  over priced calls). It moved when it changed the way the route did by at least half as much
  (`MOVED_FRACTION`): percentage points for a rate, log ratio otherwise; a value not seen before
  the onset is compared with the route's before.
- Other routes (bounded): up to `max_routes` with traffic since the onset (the route registry, or
  the busiest by a scan when it lists more); one grouped query screens them — a rate moved 2 pts
  or a mean (tokens_out, duration, cost) or calls/min 15 % within `SCREEN_SPAN` of the onset
  (`triage.other_routes`); the `MAX_CONFIRMED` strongest go through the shift detector (`detect_route`, over
  `OTHER_LOOKBACK` before the onset to now), and a route is affected when one of its moved stats
  has its onset within the tolerance (the same stat preferred).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from llm_incident.metrics.compare import COMPARED, fmt
from llm_incident.metrics.percentiles import nearest_rank, raw_rows, reference_percentile
from llm_incident.metrics.scope import C, IS_ERROR, IS_FLAGGED, event_conditions
from llm_incident.metrics.stats import WindowStats, stats_for
from llm_incident.metrics.windows import Window
from llm_incident.triage.attribution import PERCENTILE_COLUMNS, aware_utc
from llm_incident.triage.frame import ERROR, FLAGGED, PRICED, RETRY, CallFrame
from llm_incident.triage.times import micros
from llm_incident.triage.other_routes import candidate_routes, screen_routes
from llm_incident.triage.shifts import detect_route

BLAST_DIMENSIONS = ("env", "customer_tier", "region", "model")
MIN_BEFORE = timedelta(minutes=15)
VALUES_SPAN = timedelta(hours=1)  # each side of the onset, for the values' before → after
ONSET_TOLERANCE = timedelta(minutes=3)
OTHER_LOOKBACK = timedelta(hours=1)
MAX_CONFIRMED = 5
MIN_SHARE = 0.01
MAX_VALUES = 6
MOVED_FRACTION = 0.5
RATE_STATS = ("flagged_rate", "error_rate", "retry_share")


def comparison_windows(onset: datetime, now: datetime, lookback: timedelta
                       ) -> tuple[Window, Window]:
    """(before, after): after = [onset, now); before = as long, just before the onset, at least
    MIN_BEFORE, at most `lookback`."""
    onset, now = aware_utc(onset), aware_utc(now)
    span = min(max(now - onset, MIN_BEFORE), lookback)
    return Window(onset - span, onset), Window(onset, now)


def stat_value(stats: WindowStats, stat: str) -> float | None:
    """`stat` read off WindowStats (`error_code_rate:<code>` from its error codes)."""
    if stat.startswith("error_code_rate:"):
        if not stats.calls:
            return None
        return stats.error_codes.get(stat.split(":", 1)[1], 0) / stats.calls
    return getattr(stats, stat)


def is_rate(stat: str) -> bool:
    return stat in RATE_STATS or stat.startswith("error_code_rate:")


def format_stat(stat: str, value: float | None) -> str:
    kind = "rate" if is_rate(stat) else COMPARED.get(stat, (stat, "number"))[1]
    return fmt(value, kind)


def change(stat: str, before: float | None, after: float | None) -> float | None:
    """How far `stat` moved: points (as a fraction) for a rate, log ratio otherwise."""
    if before is None or after is None:
        return None
    if is_rate(stat):
        return after - before
    if before <= 0 or after <= 0:
        return None if before == after else math.copysign(math.inf, after - before)
    return math.log(after / before)


def moved_like(stat: str, route_move: float | None, before: float | None,
               after: float | None) -> bool:
    """Whether a value's move is the route's direction and at least MOVED_FRACTION of it."""
    own = change(stat, before, after)
    if route_move is None or own is None or route_move == 0:
        return False
    if math.isinf(route_move):
        return math.isinf(own) and own == route_move
    return own / route_move >= MOVED_FRACTION


@dataclass
class ValueMove:
    """One dimension value of the route: its share of calls after the onset and the stat."""

    dimension: str
    value: str
    calls_after: int
    share_after: float
    before: float | None
    after: float | None
    moved: bool
    stat: str

    def text(self) -> str:
        return (f"{self.dimension} {self.value} ({self.share_after * 100:.0f} % of calls): "
                f"{format_stat(self.stat, self.before)} → {format_stat(self.stat, self.after)}")

    def to_dict(self) -> dict[str, Any]:
        return {"dimension": self.dimension, "value": self.value, "calls_after": self.calls_after,
                "share_after": self.share_after, "before": self.before, "after": self.after,
                "moved": self.moved, "text": self.text()}


@dataclass
class RouteMove:
    """Another route whose stat shifted at about the same onset."""

    route: str
    stat: str
    onset: datetime
    before: float | None
    after: float | None
    ratio: float | None
    confidence: float

    def text(self) -> str:
        return (f"{self.route}: {self.stat} {format_stat(self.stat, self.before)} → "
                f"{format_stat(self.stat, self.after)} from {self.onset:%H:%M}")

    def to_dict(self) -> dict[str, Any]:
        return {"route": self.route, "stat": self.stat, "onset": self.onset.isoformat(),
                "before": self.before, "after": self.after, "ratio": self.ratio,
                "confidence": self.confidence, "text": self.text()}


@dataclass
class BlastRadius:
    route: str
    stat: str
    onset: datetime
    before: Window
    after: Window
    route_before: float | None
    route_after: float | None
    values: list[ValueMove] = field(default_factory=list)
    routes: list[RouteMove] = field(default_factory=list)
    routes_examined: int = 0

    def affected(self, dimension: str) -> list[ValueMove]:
        """The values of `dimension` that moved, largest share first."""
        return [v for v in self.values if v.dimension == dimension and v.moved]

    def affected_routes(self) -> list[str]:
        return [self.route, *(r.route for r in self.routes)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route, "stat": self.stat, "onset": self.onset.isoformat(),
            "before": self.before.to_dict(), "after": self.after.to_dict(),
            "route_before": self.route_before, "route_after": self.route_after,
            "values": [v.to_dict() for v in self.values],
            "affected": {d: [v.value for v in self.affected(d)] for d in BLAST_DIMENSIONS},
            "routes": [r.to_dict() for r in self.routes],
            "routes_examined": self.routes_examined,
        }


def sample_expression(stat: str) -> ColumnElement[Any]:
    """The per-call sample `stat` aggregates (as `metrics.stats` defines it): 0/1 for a rate, the
    column for a percentile or mean (NULL = not reported; cost only when priced), 1 per call for
    calls/min."""
    if stat.startswith("error_code_rate:"):
        code = stat.split(":", 1)[1]
        return case((IS_ERROR & (func.coalesce(C.error_code, "unknown") == code), 1), else_=0)
    rates = {"flagged_rate": IS_FLAGGED, "error_rate": IS_ERROR, "retry_share": C.attempt > 1}
    if stat in rates:
        return case((rates[stat], 1), else_=0)
    if stat == "cost_per_call_usd":
        return case((C.priced, C.cost_usd))
    if stat == "calls_per_min":
        return literal(1)
    column = PERCENTILE_COLUMNS.get(stat) or stat.removeprefix("avg_")
    return C[column]


def aggregate(stat: str, samples: list[Any], minutes: float) -> float | None:
    """`stat` over its samples: nearest-rank p95 for `p95_*`, else the mean (None = no data)."""
    if stat == "calls_per_min":
        return len(samples) / minutes if minutes else None
    values = [v for v in samples if v is not None]
    if not values:
        return None
    if stat.startswith("p95_"):
        return float(reference_percentile(values, 95.0))
    return sum(values) / len(values)


def _values(session: Session, route: str, stat: str, before: Window, after: Window,
            route_move: float | None, route_before: float | None) -> list[ValueMove]:
    """One read of the windows' samples with the blast dimensions, aggregated per value."""
    rows = raw_rows(session, select(
        *(C[d] for d in BLAST_DIMENSIONS), case((C.ts >= after.start, 1), else_=0),
        sample_expression(stat)).where(*event_conditions(route, before.start, after.end)))
    samples: dict[tuple[str, Any, int], list[Any]] = defaultdict(list)
    totals = [0, 0]
    for row in rows:
        side, sample = row[-2], row[-1]
        totals[side] += 1
        for dim, value in zip(BLAST_DIMENSIONS, row, strict=False):
            samples[(dim, value, side)].append(sample)
    out = []
    for dim in BLAST_DIMENSIONS:
        found = sorted(((value, len(got)) for (d, value, side), got in samples.items()
                        if d == dim and side == 1 and value is not None),
                       key=lambda r: (-r[1], str(r[0])))
        for value, calls in found[:MAX_VALUES]:
            share = calls / totals[1]
            if share < MIN_SHARE:
                continue
            was = aggregate(stat, samples.get((dim, value, 0), []), before.minutes)
            now = aggregate(stat, samples[(dim, value, 1)], after.minutes)
            moved = moved_like(stat, route_move, was if was is not None else route_before, now)
            out.append(ValueMove(dim, str(value), calls, share, was, now, moved, stat))
    return out


def frame_samples(frame: CallFrame, stat: str) -> np.ndarray | None:
    """Per call of `frame`, the sample `sample_expression(stat)` reads (NaN = NULL); None for a
    column the frame does not hold."""
    if stat.startswith("error_code_rate:"):
        return (frame.error_keys == stat.split(":", 1)[1]).astype(float)
    bits = {"flagged_rate": FLAGGED, "error_rate": ERROR, "retry_share": RETRY}
    if stat in bits:
        return frame.flag(bits[stat]).astype(float)
    if stat == "cost_per_call_usd":
        return np.where(frame.flag(PRICED), frame.values["cost_usd"], np.nan)
    if stat == "calls_per_min":
        return np.ones(len(frame))
    return frame.values.get(PERCENTILE_COLUMNS.get(stat) or stat.removeprefix("avg_"))


def _frame_values(frame: CallFrame, stat: str, before: Window, after: Window,
                  route_move: float | None, route_before: float | None
                  ) -> list[ValueMove] | None:
    """`_values` cut from `frame` (None when it cannot: a column it does not hold)."""
    samples = frame_samples(frame, stat)
    if samples is None:
        return None
    window = frame.between(before.start, after.end)
    samples = samples[window]
    side = (frame.us[window] >= micros(after.start)).astype(np.int64)
    totals = np.bincount(side, minlength=2)
    out = []
    for dim in BLAST_DIMENSIONS:
        values = frame.dimension(dim)[window]
        found = Counter(v for v in values[side == 1].tolist() if v is not None)
        ranked = sorted(found.items(), key=lambda r: (-r[1], str(r[0])))
        for value, calls in ranked[:MAX_VALUES]:
            share = calls / totals[1]
            if share < MIN_SHARE:
                continue
            mine = values == value
            was = _aggregate_array(stat, samples[mine & (side == 0)], before.minutes)
            now = _aggregate_array(stat, samples[mine & (side == 1)], after.minutes)
            moved = moved_like(stat, route_move, was if was is not None else route_before, now)
            out.append(ValueMove(dim, str(value), calls, share, was, now, moved, stat))
    return out


def _aggregate_array(stat: str, samples: np.ndarray, minutes: float) -> float | None:
    """`aggregate` over a numpy array of samples (NaN = NULL)."""
    if stat == "calls_per_min":
        return samples.size / minutes if minutes else None
    values = samples[~np.isnan(samples)]
    if values.size == 0:
        return None
    if stat.startswith("p95_"):
        k = nearest_rank(95.0, values.size) - 1
        return float(np.partition(values, k)[k])
    return sum(values.tolist()) / values.size


def _route_move(shifts: Any, route: str, stat: str, onset: datetime) -> RouteMove | None:
    near = [s for s in shifts.moved() if s.onset is not None
            and abs(aware_utc(s.onset) - onset) <= ONSET_TOLERANCE]
    if not near:
        return None
    near.sort(key=lambda s: (s.stat != stat, -s.confidence, s.stat))
    best = near[0]
    return RouteMove(route, best.stat, aware_utc(best.onset), best.before, best.after,
                     best.ratio, best.confidence)


def values_windows(onset: datetime, now: datetime, lookback: timedelta) -> tuple[Window, Window]:
    """The windows the values' before → after read: `VALUES_SPAN` either side of the onset at
    most, within `comparison_windows`."""
    before, _ = comparison_windows(onset, now, lookback)
    return (Window(max(before.start, onset - VALUES_SPAN), onset),
            Window(onset, min(now, onset + VALUES_SPAN)))


def blast_radius(session: Session, route: str, *, stat: str, onset: datetime, now: datetime,
                 lookback: timedelta = timedelta(hours=6), max_routes: int = 20,
                 detect: Callable[..., Any] | None = None,
                 window_stats: tuple[WindowStats, WindowStats] | None = None,
                 frame: CallFrame | None = None) -> BlastRadius:
    """Which values of `route` and which other routes moved at `onset` (see the docstring).

    `detect`: the shift detector (default `triage.shifts.detect_route`); `window_stats`: the
    route's stats over `comparison_windows` when the caller has them (before, after); `frame`:
    the route's calls (`triage.frame`), cut for the values instead of a query when it covers
    `values_windows`."""
    detect = detect or detect_route
    onset, now = aware_utc(onset), aware_utc(now)
    before, after = comparison_windows(onset, now, lookback)
    if window_stats is None:
        window_stats = (stats_for(session, route, before.start, before.end),
                        stats_for(session, route, after.start, after.end))
    route_before, route_after = (stat_value(w, stat) for w in window_stats)
    route_move = change(stat, route_before, route_after)
    near_before, near_after = values_windows(onset, now, lookback)
    values = None
    if frame is not None and frame.covers(near_before.start, near_after.end):
        values = _frame_values(frame, stat, near_before, near_after, route_move, route_before)
    if values is None:
        values = _values(session, route, stat, near_before, near_after, route_move,
                         route_before)
    blast = BlastRadius(route, stat, onset, before, after, route_before, route_after,
                        values=values)
    others = candidate_routes(session, route=route, onset=onset, now=now, limit=max_routes)
    other_lookback = min(lookback, (now - onset) + OTHER_LOOKBACK)
    for other in screen_routes(session, others, onset=onset, now=now)[:MAX_CONFIRMED]:
        found = _route_move(detect(session, other, now=now, lookback=other_lookback), other,
                            stat, onset)
        if found is not None:
            blast.routes.append(found)
    blast.routes_examined = len(others)
    return blast

