"""Evaluate alert rules: one observation (value, baseline, level) per rule and route at `now`.

Levels: `ok` < `warning` < `critical`. A ratio rule compares now ÷ baseline with its levels (a
baseline of 0 with a value above 0 is an infinite ratio) and needs the value to reach `floor`;
an absolute rule compares the value itself. No judgement (`level` None, `reason` says why) when
the window has fewer than `min_calls` calls, a ratio rule's baseline has fewer, or the metric has
no value (e.g. no event reported tokens): the stored state is then kept as it is.

Stats come from `metrics.stats` (one source of numbers); rules sharing a window, baseline and
filter share one stats query per route.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from llm_incident.alerts.rules import ALL_ROUTES, AlertRule
from llm_incident.events.routes import KnownRoute
from llm_incident.metrics.filters import compile_filter
from llm_incident.metrics.stats import WindowStats, stats_for
from llm_incident.metrics.windows import Window, baseline_for, window_ending

OK, WARNING, CRITICAL = "ok", "warning", "critical"
RANK = {OK: 0, WARNING: 1, CRITICAL: 2}


@dataclass(frozen=True)
class Observation:
    """What a rule sees on a route now; `level` None = no judgement (see `reason`)."""

    rule: AlertRule
    route: str
    level: str | None
    value: float | None
    baseline: float | None
    calls: int
    window: Window
    reason: str = ""

    @property
    def ratio(self) -> float | None:
        return ratio(self.value, self.baseline)


def ratio(value: float | None, baseline: float | None) -> float | None:
    """value ÷ baseline; inf when only the baseline is 0; None when either is missing or both 0."""
    if value is None or baseline is None:
        return None
    if baseline == 0:
        return math.inf if value > 0 else None
    return value / baseline


def judge(rule: AlertRule, value: float, baseline: float | None) -> str:
    """The level of `value` under `rule` (ratio rules need `baseline`)."""
    if rule.compare == "ratio":
        if value < rule.floor or value == 0:
            return OK
        measure = ratio(value, baseline)
        if measure is None:
            return OK
    else:
        measure = value
    if measure >= rule.critical:
        return CRITICAL
    if measure >= rule.warning:
        return WARNING
    return OK


class StatsCache:
    """Window stats per (route, window, filter) within one evaluation."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session, self.now = session, now
        self._stats: dict[tuple[Any, ...], WindowStats] = {}

    def get(self, route: str, window: Window, filter_text: str | None) -> WindowStats:
        key = (route, window.start, window.end, filter_text)
        if key not in self._stats:
            where = compile_filter(filter_text, now=self.now) if filter_text else None
            self._stats[key] = stats_for(self.session, route, window.start, window.end,
                                         where=where)
        return self._stats[key]


def routes_with_traffic(session: Session, since: datetime) -> list[str]:
    """Routes that sent an event at or after `since` (from the route registry; no event scan)."""
    stmt = select(KnownRoute.route).where(KnownRoute.last_seen >= since).order_by(KnownRoute.route)
    return list(session.exec(stmt))


def observe(cache: StatsCache, rule: AlertRule, route: str) -> Observation:
    """The rule's observation on one route at the cache's `now`."""
    window = window_ending(cache.now, rule.window_span)
    now_stats = cache.get(route, window, rule.filter)
    value = rule.watched.read(now_stats, rule)
    base: float | None = None

    def seen(level: str | None, reason: str = "") -> Observation:
        return Observation(rule, route, level, value, base, now_stats.calls, window, reason)

    if now_stats.calls < rule.min_calls:
        return seen(None, f"{now_stats.calls} calls in {rule.window} (min {rule.min_calls})")
    if value is None:
        return seen(None, f"no {rule.label()} in the window")
    if rule.compare == "ratio":
        base_window = baseline_for(window, rule.baseline).window
        base_stats = cache.get(route, base_window, rule.filter)
        base = rule.watched.read(base_stats, rule)
        if base_stats.calls < rule.min_calls or base is None:
            return seen(None, f"{rule.baseline} baseline has {base_stats.calls} calls "
                              f"(min {rule.min_calls})")
    return seen(judge(rule, value, base))


def observe_all(session: Session, rules: tuple[AlertRule, ...] | list[AlertRule],
                now: datetime) -> list[Observation]:
    """Every rule on every route it covers (`*`: routes with traffic in its window)."""
    cache = StatsCache(session, now)
    observations: list[Observation] = []
    active: dict[datetime, list[str]] = {}
    for rule in rules:
        if rule.route == ALL_ROUTES:
            since = now - rule.window_span
            if since not in active:
                active[since] = routes_with_traffic(session, since)
            routes = active[since]
        else:
            routes = [rule.route]
        observations.extend(observe(cache, rule, route) for route in routes)
    return observations


def series(session: Session, rule: AlertRule, route: str, now: datetime,
           points: int = 12) -> list[float | None]:
    """The rule's metric over the last `points` windows, oldest first (for a sparkline)."""
    cache = StatsCache(session, now)
    span = rule.window_span
    values = []
    for back in range(points - 1, -1, -1):
        window = window_ending(now - span * back, span)
        values.append(rule.watched.read(cache.get(route, window, rule.filter), rule))
    return values
