"""Evaluate alert rules: one observation (value, baseline, level) per rule and route at `now`.

Levels: `ok` < `warning` < `critical`. `level` None = no judgement, the stored state is kept
(`reason` says why; `status` "learning" when no baseline has enough history yet).

A rule that is not firing on a route:

1. reads its window (`window`, e.g. 15 min) and a short one (the last `SHORT` minutes); fewer than
   `min_calls` calls in the window, or no value: not judged;
2. ratio rules pick a baseline along the chain (`alerts.baselines`: week → day → trailing);
3. is *suspected* when the window or the short window reaches `warning` (ratio: value ÷ baseline
   and at least `floor`; absolute: the value) — most rule × route pairs stop here, cheaply;
4. a suspicion is *confirmed* by the shift detector (`alerts.confirm`): a step (or drift) up of
   the rule's stat in the last 2 h, with `min_calls` calls before the onset and `min_after` from
   it. The level is that of the value since the onset — against the baseline (a trailing one
   taken before the onset), and against the detector's own before (the smaller of the two
   levels). An absolute rule whose window and short window are both at a level holds it without
   an onset (a route broken for longer than the look-back); there, absolute rules on rates read
   the 95 % lower bound of the rate (`confident`), so a few errors among few calls are no level.
5. `critical` fires at once; `warning` needs a second evaluation in a row that sees it (the
   observation carries `pending` in between) or the whole window at warning too — no alert on
   one noisy minute.

A firing rule holds its level by the value since its onset (at most the window) against the
baseline before the onset, and resolves when that drops below `warning`.

Silent routes (`compare = "drop"`, metric calls_per_min): every route seen in the last day,
judged by baseline calls ÷ calls in the window when a Poisson test says so few calls are no
chance (p < `SILENT_P`) and the baseline expects at least `min_calls` in the window; the
baseline is the lower of the chain's and the trailing one (traffic that is merely lower than a
day ago, on a weekend, is no outage). A stop is critical sooner: no call in the last 2 (else 5)
minutes when the baseline rate makes that a one-in-a-million chance. A route with
no traffic in a rule's window, or judged silent, gets its other firing states resolved ("not
judged: no traffic since 14:05").

Stats come from `metrics.stats` (one source of numbers); rules sharing a window and filter share
one stats query per route; baselines are re-read every 5 minutes (`BaselineMemo`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from scipy.stats import poisson
from sqlmodel import Session, select

from llm_incident.alerts.baselines import LEARNING, BaselinePick, choose
from llm_incident.alerts.confirm import SeriesCache, confirm
from llm_incident.alerts.models import AlertState
from llm_incident.alerts.rules import ALL_ROUTES, AlertRule
from llm_incident.events.routes import KnownRoute
from llm_incident.metrics.filters import compile_filter
from llm_incident.metrics.stats import WindowStats, stats_for
from llm_incident.metrics.windows import Window, window_ending

OK, WARNING, CRITICAL = "ok", "warning", "critical"
RANK = {OK: 0, WARNING: 1, CRITICAL: 2}
PENDING, STALE = "pending", "stale"
SHORT = timedelta(minutes=5)
SILENT_P = 1e-6
SILENT_HORIZON = timedelta(days=1)  # routes seen this recently are watched for silence
STOP_MINUTES = (2, 5)  # a stop: no call in this many minutes, when the baseline makes it rare


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


def confident(rule: AlertRule, value: float | None, calls: int) -> float | None:
    """For an absolute rule on a rate: the one-sided 95 % Wilson lower bound of the rate, so a
    level is reached with confidence (1 error in 30 calls is not a 3 % error rate); else the
    value."""
    if value is None or rule.compare != "absolute" or rule.watched.kind != "rate" or calls <= 0:
        return value
    z = 1.645
    centre = value + z * z / (2 * calls)
    spread = z * math.sqrt(value * (1 - value) / calls + z * z / (4 * calls * calls))
    return max(0.0, (centre - spread) / (1 + z * z / calls))


def lower(a: str, b: str) -> str:
    return a if RANK[a] <= RANK[b] else b


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


def routes_with_traffic(session: Session, since: datetime) -> list[str]:
    """Routes that sent an event at or after `since` (from the route registry; no event scan)."""
    stmt = select(KnownRoute.route).where(KnownRoute.last_seen >= since).order_by(KnownRoute.route)
    return list(session.exec(stmt))


def _aware(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts


def _seen(session: Session, since: datetime) -> dict[str, tuple[datetime, datetime]]:
    rows = session.exec(select(KnownRoute.route, KnownRoute.first_seen, KnownRoute.last_seen)
                        .where(KnownRoute.last_seen >= since))
    return {route: (_aware(first), _aware(last)) for route, first, last in rows}


def stored_states(session: Session) -> dict[tuple[str, str], AlertState]:
    return {(s.rule_id, s.route): s for s in session.exec(select(AlertState))}


def observe(ev: Evaluation, rule: AlertRule, route: str) -> Observation:
    """The rule's observation on one route at `ev.now`."""
    if rule.compare == "drop":
        return observe_silence(ev, rule, route)
    window = window_ending(ev.now, rule.window_span)
    now_stats = ev.stats.get(route, window, rule.filter)
    value = rule.watched.read(now_stats, rule)
    state = ev.states.get((rule.id, route))
    firing = state is not None and state.level != OK
    onset = _aware(state.onset) if firing and state.onset is not None else None

    def seen(level: str | None, reason: str = "", **more: Any) -> Observation:
        fields = dict(rule=rule, route=route, level=level, value=value, baseline=None,
                      calls=now_stats.calls, window=window, reason=reason, onset=onset)
        fields.update(more)
        return Observation(**fields)

    if now_stats.calls < rule.min_calls:
        return seen(None, f"{now_stats.calls} calls in {rule.window} (min {rule.min_calls})")
    if value is None:
        return seen(None, f"no {rule.label()} in the window")
    pick = BaselinePick(None, None, None, 0, "")
    if rule.uses_baseline:
        pick = ev.baseline(rule, route, window, onset)
        if pick.kind is None:
            return seen(None, pick.note, status=LEARNING)
    if firing:
        return _hold(ev, rule, route, window, now_stats, pick, state, seen)
    short = ev.stats.get(route, window_ending(ev.now, SHORT), rule.filter)
    short_value = rule.watched.read(short, rule)
    short_ok = short_value is not None and short.calls >= rule.min_after
    long_level = judge(rule, value, pick.value)
    short_level = judge(rule, short_value, pick.value) if short_ok else None
    if RANK[long_level] < RANK[WARNING] and (short_level is None
                                             or RANK[short_level] < RANK[WARNING]):
        return seen(OK, baseline=pick.value, basis=pick.note)
    # absolute rules: the level the long and the short window agree on (rates at their lower
    # bound) holds without an onset
    sustained = OK
    if rule.compare == "absolute":
        sustained = judge(rule, confident(rule, value, now_stats.calls), None)
        if short_ok:
            sustained = lower(sustained, judge(rule, confident(rule, short_value, short.calls),
                                               None))
    found, why = confirm(ev.series.get(route, rule.filter), rule)
    if found is not None and found.n_before < rule.min_calls:
        found, why = None, f"{found.n_before} calls before the onset (min {rule.min_calls})"
    level, result = OK, dict(baseline=pick.value, basis=pick.note)
    if found is not None:
        if pick.kind == "trailing":  # the baseline before the onset, not across it
            pick = ev.baseline(rule, route, window, found.onset)
            if pick.kind is None:
                return seen(None, pick.note, status=LEARNING, onset=found.onset)
        level = judge(rule, found.after, pick.value)  # a confirmed shift: its size as measured
        if rule.compare == "ratio":
            level = lower(level, judge(rule, found.after, found.before))
        result = dict(value=found.after, baseline=pick.value, calls=found.n_after,
                      onset=found.onset, basis=pick.note, reason=found.reason)
    if RANK[sustained] > RANK[level]:
        level, result = sustained, dict(result, value=value, calls=now_stats.calls,
                                        reason="no onset in the last 2 h", onset=None)
    if level == OK:
        result["reason"] = f"not confirmed: {why}" if found is None else (
            f"{found.reason}: below the levels")
        return seen(OK, **result)
    agreed = long_level != OK and short_level not in (None, OK)
    if level == WARNING and not agreed and (state is None or state.pending != WARNING):
        return seen(OK, status=PENDING, pending=WARNING, **result)
    return seen(level, **result)


def _hold(ev: Evaluation, rule: AlertRule, route: str, window: Window, now_stats: WindowStats,
          pick: BaselinePick, state: AlertState, seen: Any) -> Observation:
    """A firing rule: the value since its onset (at most the window) against the baseline. It
    rises only when sure (an absolute rule on a rate: at its 95 % lower bound, and without an
    onset over the short window too, as it fired), and falls only when the value itself does —
    no flapping at a level's edge."""
    onset = _aware(state.onset) if state.onset is not None else None
    stats = now_stats
    if onset is not None and window.start < onset < ev.now:
        since = ev.stats.get(route, Window(onset, ev.now), rule.filter)
        if since.calls >= rule.min_after:
            stats = since
    value = rule.watched.read(stats, rule)
    if value is None:
        return seen(None, f"no {rule.label()} since the onset")
    sure = judge(rule, confident(rule, value, stats.calls), pick.value)
    if rule.compare == "absolute" and onset is None:
        short = ev.stats.get(route, window_ending(ev.now, SHORT), rule.filter)
        short_value = confident(rule, rule.watched.read(short, rule), short.calls)
        if short_value is not None and short.calls >= rule.min_after:
            sure = lower(sure, judge(rule, short_value, None))
    plain = judge(rule, value, pick.value)
    level = sure if RANK[sure] > RANK[state.level] else (
        plain if RANK[plain] < RANK[state.level] else state.level)
    return seen(level, value=value, baseline=pick.value, calls=stats.calls, basis=pick.note)


def observe_silence(ev: Evaluation, rule: AlertRule, route: str) -> Observation:
    """A drop rule on one route: calls in the window against the baseline's expectation."""
    window = window_ending(ev.now, rule.window_span)
    now_stats = ev.stats.get(route, window, rule.filter)
    value = rule.watched.read(now_stats, rule)
    state = ev.states.get((rule.id, route))
    last = ev.seen.get(route, (None, None))[1]
    pick = ev.baseline(rule, route, window)

    def seen(level: str | None, reason: str = "", **more: Any) -> Observation:
        fields = dict(rule=rule, route=route, level=level, value=value, baseline=pick.value,
                      calls=now_stats.calls, window=window, reason=reason, basis=pick.note)
        fields.update(more)
        return Observation(**fields)

    if pick.kind is None:
        return seen(None, pick.note, status=LEARNING)
    if pick.kind != "trailing" and judge(rule, value, pick.value) != OK:
        recent = ev.baseline(rule.model_copy(update={"baseline": "trailing"}), route, window)
        if recent.kind is not None and recent.value < pick.value:  # the lower expectation: a
            pick = recent                                          # weekend morning is no outage
    stopped = _stopped(ev, rule, route, pick.value)
    if stopped is not None:
        state_onset = _aware(state.onset) if state is not None and state.onset else None
        return seen(CRITICAL, stopped[0], onset=state_onset or stopped[1])
    expected = pick.value * window.minutes
    if expected < rule.min_calls:
        return seen(None, f"the baseline expects {expected:.0f} calls in {rule.window} "
                          f"(min {rule.min_calls})")
    chance = float(poisson.cdf(now_stats.calls, expected))
    level = judge(rule, value, pick.value) if chance < SILENT_P else OK
    if now_stats.calls == 0 and last is not None and last < window.start:
        reason, onset = f"no traffic since {last:%H:%M}", last
    else:
        reason = f"{now_stats.calls} calls in {rule.window}, {expected:.0f} expected"
        onset = window.start
    if state is not None and state.level != OK and state.onset is not None:
        onset = _aware(state.onset)
    if level == WARNING and (state is None or state.level == OK) and (
            state is None or state.pending != WARNING):
        return seen(OK, reason, status=PENDING, pending=WARNING, onset=onset)
    return seen(level, reason, onset=onset if level != OK else None)


def _stopped(ev: Evaluation, rule: AlertRule, route: str,
             per_min: float) -> tuple[str, datetime] | None:
    """(reason, onset) when the last `STOP_MINUTES` (2, else 5) minutes hold no call although the
    baseline makes that a one-in-a-million chance (expected calls ≥ -ln `SILENT_P`); None else."""
    last = ev.seen.get(route, (None, None))[1]
    for minutes in STOP_MINUTES:
        span = timedelta(minutes=minutes)
        if per_min * minutes < -math.log(SILENT_P):
            continue
        if ev.stats.get(route, window_ending(ev.now, span), rule.filter).calls == 0:
            if last is not None and last < ev.now - span:
                return f"no traffic since {last:%H:%M}", last
            return f"no call in the last {minutes} min", ev.now - span
    return None


def _stale(ev: Evaluation, rule: AlertRule, route: str, state: AlertState,
           silent: Observation | None) -> Observation | None:
    """A resolution for a firing state of a route that has no traffic in the rule's window, or
    that the silence rule judges silent; None when the route is not stale."""
    window = window_ending(ev.now, rule.window_span)
    last = ev.seen.get(route, (None, None))[1]
    quiet = last is None or last < window.start
    if not quiet and not (silent is not None and silent.level in (WARNING, CRITICAL)):
        return None
    since = f" since {last:%H:%M}" if last is not None else ""
    reason = (f"not judged: no traffic{since}" if quiet else
              f"not judged: traffic dropped ({silent.reason})")
    return Observation(rule, route, OK, None, None, 0, window, reason, status=STALE,
                       onset=_aware(state.onset) if state.onset else None)


def observe_all(session: Session, rules: tuple[AlertRule, ...] | list[AlertRule],
                now: datetime, *, states: dict[tuple[str, str], AlertState] | None = None,
                memo: BaselineMemo | None = None) -> list[Observation]:
    """Every rule on every route it covers (`*`: routes with traffic in its window; drop rules:
    routes seen in the last day), then the stale firing states resolved. `memo` keeps baselines
    across evaluations (the scheduler's job passes one)."""
    ev = Evaluation(session, now, StatsCache(session, now), SeriesCache(session, now),
                    stored_states(session) if states is None else states,
                    _seen(session, now - SILENT_HORIZON), memo or BaselineMemo())
    observations: list[Observation] = []
    for rule in sorted(rules, key=lambda r: r.compare != "drop"):  # silence first
        if rule.route != ALL_ROUTES:
            routes = [rule.route]
        elif rule.compare == "drop":
            routes = sorted(ev.seen)
        else:
            since = now - rule.window_span
            routes = sorted(r for r, (_first, last) in ev.seen.items() if last >= since)
        observations.extend(observe(ev, rule, route) for route in routes)
    silent = {o.route: o for o in observations if o.rule.compare == "drop"}
    covered = {(o.rule.id, o.route) for o in observations}
    by_id = {rule.id: rule for rule in rules}
    for (rule_id, route), state in sorted(ev.states.items()):
        rule = by_id.get(rule_id)
        if rule is None or rule.compare == "drop" or state.level == OK:
            continue
        stale = _stale(ev, rule, route, state, silent.get(route))
        if stale is None:
            continue
        if (rule_id, route) in covered:
            observations = [stale if (o.rule.id, o.route) == (rule_id, route) else o
                            for o in observations]
        else:
            observations.append(stale)
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
