"""Silent routes: a drop rule judges calls in the window against the baseline's expectation
(Poisson), a stop (no call for as many minutes as make that one-in-a-million, at least 2) is
critical sooner, and a quiet or silent
route's other firing states are resolved as stale. See `alerts.evaluate` for the whole."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from scipy.stats import poisson
from sqlmodel import Session, select

from llm_incident.alerts.baselines import LEARNING
from llm_incident.alerts.models import AlertState
from llm_incident.alerts.observation import (CRITICAL, OK, PENDING, STALE, WARNING, Evaluation,
                                             Observation, _aware, judge)
from llm_incident.alerts.rules import AlertRule
from llm_incident.controls.models import RouteControl
from llm_incident.metrics.windows import window_ending

KILLED_REASON = "not judged: the route is killed (its traffic stopped on purpose)"
SILENT_P = 1e-6
STOP_MINUTES = 2  # a stop: no call in at least this many minutes, when the baseline makes it rare


def killed_routes(session: Session) -> frozenset[str]:
    """Routes whose kill switch is on in some env: their silence is the kill working."""
    return frozenset(session.exec(select(RouteControl.route)
                                  .where(RouteControl.enabled.is_(False))).all())


def observe_silence(ev: Evaluation, rule: AlertRule, route: str) -> Observation:
    """A drop rule on one route: calls in the window against the baseline's expectation; a
    killed route is not judged (no traffic is what the kill is for)."""
    window = window_ending(ev.now, rule.window_span)
    now_stats = ev.stats.get(route, window, rule.filter)
    value = rule.watched.read(now_stats, rule)
    state = ev.states.get((rule.id, route))
    if route in ev.killed:
        return Observation(rule, route, OK, value, None, now_stats.calls, window,
                           KILLED_REASON, status=STALE)
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
    """(reason, onset) when the last m minutes hold no call although the baseline makes that a
    one-in-a-million chance: m = the fewest whole minutes (at least `STOP_MINUTES`, at most the
    window) in which the baseline expects -ln `SILENT_P` (13.8) calls — 2 min from 7 calls/min,
    6 min at 2.5; None else."""
    if per_min <= 0:
        return None
    minutes = max(STOP_MINUTES, math.ceil(-math.log(SILENT_P) / per_min))
    if minutes > rule.window_span / timedelta(minutes=1):
        return None
    span = timedelta(minutes=minutes)
    if ev.stats.get(route, window_ending(ev.now, span), rule.filter).calls:
        return None
    last = ev.seen.get(route, (None, None))[1]
    if last is not None and last < ev.now - span:
        return f"no traffic since {last:%H:%M}", last
    return f"no call in the last {minutes} min", ev.now - span


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


