"""What one alert rule sees on one route: levels, the `Observation`, how a value is judged, and
the caches an evaluation shares (stats per window, baselines across evaluations)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlmodel import Session

from llm_incident.alerts.baselines import LEARNING, BaselinePick, choose
from llm_incident.alerts.confirm import SeriesCache
from llm_incident.alerts.models import AlertState
from llm_incident.alerts.rules import AlertRule
from llm_incident.metrics.filters import compile_filter
from llm_incident.metrics.routes_stats import RoutesStats, routes_stats
from llm_incident.metrics.stats import WindowStats, stats_for
from llm_incident.metrics.windows import Window

OK, WARNING, CRITICAL = "ok", "warning", "critical"
RANK = {OK: 0, WARNING: 1, CRITICAL: 2}
PENDING, STALE = "pending", "stale"
SHORT = timedelta(minutes=5)


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
    status: str = ""                 # "learning" | "pending" | "stale" | ""
    onset: datetime | None = None    # when the shift began (aware UTC)
    basis: str = ""                  # which baseline, e.g. "vs the last 3 h; no day-ago data yet"
    pending: str | None = None       # a warning seen once, confirmed by the next evaluation

    @property
    def ratio(self) -> float | None:
        if self.rule.compare == "drop":
            return ratio(self.baseline, self.value)
        return ratio(self.value, self.baseline)

    @property
    def shown_level(self) -> str:
        """The level as a list shows it: the level, `learning`, `pending warning`, `not judged`."""
        if self.status == LEARNING:
            return LEARNING
        if self.pending:
            return f"{PENDING} {self.pending}"
        return self.level or "not judged"


def ratio(value: float | None, baseline: float | None) -> float | None:
    """value ÷ baseline; inf when only the baseline is 0; None when either is missing or both 0."""
    if value is None or baseline is None:
        return None
    if baseline == 0:
        return math.inf if value > 0 else None
    return value / baseline


def judge(rule: AlertRule, value: float, baseline: float | None) -> str:
    """The level of `value` under `rule` (ratio and drop rules need `baseline`)."""
    if rule.compare == "ratio":
        if value < rule.floor or value == 0:
            return OK
        measure = ratio(value, baseline)
    elif rule.compare == "drop":
        measure = ratio(baseline, value)
    else:
        measure = value
    if measure is None:
        return OK
    if measure >= rule.critical:
        return CRITICAL
    if measure >= rule.warning:
        return WARNING
    return OK


def confident(rule: AlertRule, value: float | None, calls: int, z: float = 1.645
              ) -> float | None:
    """For an absolute rule on a rate: the one-sided Wilson lower bound of the rate (95 % at
    the default `z`), so a level is reached with confidence (1 error in 30 calls is not a 3 %
    error rate); else the value."""
    if value is None or rule.compare != "absolute" or rule.watched.kind != "rate" or calls <= 0:
        return value
    centre = value + z * z / (2 * calls)
    spread = z * math.sqrt(value * (1 - value) / calls + z * z / (4 * calls * calls))
    return max(0.0, (centre - spread) / (1 + z * z / calls))


def lower(a: str, b: str) -> str:
    return a if RANK[a] <= RANK[b] else b


class StatsCache:
    """Window stats per (route, window, filter) within one evaluation.

    A baseline window without a filter that a second route asks for is read for every route at
    once (`routes_stats`): the routes of an evaluation mostly share their baseline windows (a
    day ago, the trailing 3 h), and one read per window instead of one per route took the
    first run of 200 routes on 10 M PostgreSQL events from 5.4 s to 2.6 s (bench/scale.py)."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session, self.now = session, now
        self._stats: dict[tuple[Any, ...], WindowStats] = {}
        self._asked: Counter[tuple[datetime, datetime]] = Counter()
        self._all: dict[tuple[datetime, datetime], RoutesStats | None] = {}

    def get(self, route: str, window: Window, filter_text: str | None, *,
            path: str = "auto") -> WindowStats:
        """`path` as `stats_for` takes it ("rollups" for a baseline: history, read from the
        rollups whenever they can answer, percentiles within 1 %)."""
        key = (route, window.start, window.end, filter_text, path)
        if key in self._stats:
            return self._stats[key]
        if path == "rollups" and not filter_text:
            every = self._every_route(window)
            if every is not None:
                self._stats[key] = every[route]
                return self._stats[key]
        where = compile_filter(filter_text, now=self.now) if filter_text else None
        self._stats[key] = stats_for(self.session, route, window.start, window.end,
                                     where=where, path=path)
        return self._stats[key]

    def _every_route(self, window: Window) -> RoutesStats | None:
        """Every route's rollup stats over `window` from the second route that asks (a window
        only one route asks for — its onset, its short history — is read for it alone)."""
        span = (window.start, window.end)
        if span not in self._all:
            self._asked[span] += 1
            if self._asked[span] < 2:
                return None
            self._all[span] = routes_stats(self.session, window.start, window.end)
        return self._all[span]


class BaselineMemo:
    """Baseline picks kept across evaluations for `TTL` (a baseline is history: re-reading it
    every minute buys nothing); a learning pick is never kept, so learning ends on time."""

    TTL = timedelta(minutes=5)

    def __init__(self) -> None:
        self._picks: dict[tuple[Any, ...], tuple[datetime, BaselinePick]] = {}

    def get(self, key: tuple[Any, ...], now: datetime) -> BaselinePick | None:
        hit = self._picks.get(key)
        if hit is None or not hit[0] <= now < hit[0] + self.TTL:
            return None
        return hit[1]

    def put(self, key: tuple[Any, ...], now: datetime, pick: BaselinePick) -> None:
        if len(self._picks) > 100_000:
            self._picks.clear()
        if pick.kind is not None:
            self._picks[key] = (now, pick)


@dataclass
class Evaluation:
    """Everything one evaluation reads once: stats, series, stored states, the route registry."""

    session: Session
    now: datetime
    stats: StatsCache
    series: SeriesCache
    states: dict[tuple[str, str], AlertState]
    seen: dict[str, tuple[datetime, datetime]]  # route → (first, last) seen, aware UTC
    memo: BaselineMemo
    killed: frozenset[str] = frozenset()  # routes whose kill switch is on (in some env)

    def first_seen(self, route: str) -> datetime | None:
        return self.seen[route][0] if route in self.seen else None

    def baseline(self, rule: AlertRule, route: str, window: Window,
                 anchor: datetime | None = None) -> BaselinePick:
        """The rule's baseline for `window` (see `alerts.baselines.choose`), memoized."""
        key = (rule.id, rule.window, rule.baseline, rule.trailing, rule.filter, route, anchor)
        pick = self.memo.get(key, self.now)
        if pick is None:
            pick = choose(self.stats, rule, route, window, first_seen=self.first_seen(route),
                          anchor=anchor)
            self.memo.put(key, self.now, pick)
        return pick


def _aware(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts


