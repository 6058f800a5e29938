"""Confirm a suspected alert with the triage shift detector: did the rule's stat step (or drift)
up, when, and to what — from the raw samples of the last `LOOKBACK`.

The detector (`triage.shifts.detect`) runs over one `minute_series` per route and filter (one
raw-row query, shared by every rule of the route in one evaluation), with onsets allowed down to
`MIN_SEGMENT` minutes before now (the detector's default waits 5) and the rule's `min_after`
samples after the onset, and loosened practical-effect gates (`MIN_RATIO`, `MIN_POINTS`: the
rule's levels judge the size). The detector reports the largest change of its window; when that
is an older one (an earlier regression's end), the series is cut there and searched again
(`shifts_up`). Stats: the rule's own (`error_code_rate:<code>` for a code rule);
`cost_per_hour` is confirmed by a step up of cost per call, or of calls per minute by at least
the critical ratio (traffic that grows at the same cost per call is not news below that), its
before / after read from the series as cost per hour (the before without silences: runs of
`SILENCE_MINUTES` empty minutes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from llm_incident.alerts.rules import AlertRule
from llm_incident.metrics.filters import compile_filter
from llm_incident.triage.series import ERROR_CODE_PREFIX, MinuteSeries, floor_minute, minute_series
from llm_incident.triage.shifts import Shift, detect

LOOKBACK = timedelta(hours=2)
MIN_SEGMENT = 1          # minutes after the onset the detector needs (and before it)
COST_STATS = ("cost_per_call_usd", "calls_per_min")
PER_MINUTE_MIN_AFTER = 5  # calls_per_min has one sample per minute
MAX_SEARCHES = 3         # detector runs per stat: the largest change, then after each cut
# The detector's practical-effect gates, loosened: a rule's own levels judge the size of a shift
# (against the baseline and the detector's before), so the detector only has to say it is real.
MIN_RATIO, MIN_POINTS = 1.1, 0.005
SILENCE_MINUTES = 10     # a run of this many empty minutes is a silence, not traffic


@dataclass(frozen=True)
class Confirmed:
    """A confirmed upward shift of the rule's stat: `after` over [onset, end of the series)."""

    onset: datetime
    before: float
    after: float
    n_before: int
    n_after: int
    reason: str


def detector_stat(rule: AlertRule) -> str:
    if rule.metric == "error_code_rate":
        return ERROR_CODE_PREFIX + str(rule.error_code)
    return rule.metric


class SeriesCache:
    """One minute series per (route, filter) within one evaluation, over the `LOOKBACK` of whole
    minutes before `now`."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session, self.now = session, now
        self.end = floor_minute(now)
        self._series: dict[tuple[str, str | None], MinuteSeries] = {}
        self.queries = 0

    def get(self, route: str, filter_text: str | None) -> MinuteSeries:
        key = (route, filter_text)
        if key not in self._series:
            where = compile_filter(filter_text, now=self.now) if filter_text else None
            self._series[key] = within(minute_series(self.session, route, self.end - LOOKBACK,
                                                     self.end, where=where))
            self.queries += 1
        return self._series[key]


def within(series: MinuteSeries) -> MinuteSeries:
    """The series without calls past its last minute. SQLite's unixepoch() rounds a time in the
    last millisecond of a minute up to the next one (13:59:59.9995 → 14:00:00), which would put a
    call just before the end in minute `len(minutes)` (the detector then fails on the mismatch)."""
    keep = int(series.bounds[-1])
    if keep == series.minute_of.size:
        return series
    return replace(series, minute_of=series.minute_of[:keep],
                   columns={name: column[:keep] for name, column in series.columns.items()},
                   error_keys=series.error_keys[:keep], _cache={})


def _up(shift: Shift) -> bool:
    return (shift.kind in ("step", "drift") and shift.onset is not None
            and shift.before is not None and shift.after is not None
            and shift.after > shift.before)


def tail(series: MinuteSeries, first: int) -> MinuteSeries:
    """The series from its minute `first` on."""
    if first <= 0:
        return series
    at = int(series.bounds[first])
    return replace(series, start=series.minutes[first], minutes=series.minutes[first:],
                   minute_of=series.minute_of[at:] - first, bounds=series.bounds[first:] - at,
                   columns={name: column[at:] for name, column in series.columns.items()},
                   error_keys=series.error_keys[at:], _cache={})


def _detect(series: MinuteSeries, stat: str, min_after: int) -> Shift:
    if stat == "calls_per_min":
        min_after = PER_MINUTE_MIN_AFTER
    return detect(series, stat, min_segment=MIN_SEGMENT, min_after=min_after,
                  min_ratio=MIN_RATIO, min_points=MIN_POINTS)


def shifts_up(series: MinuteSeries, stat: str, min_after: int, recent: datetime
              ) -> tuple[list[tuple[Shift, MinuteSeries]], str]:
    """The upward shift of `stat` that still holds, if any, with the series it was found in.

    The detector reports the largest change of its window, which is often an older one (the
    end of an earlier regression, a step down, hides a new, smaller step up). So while the
    change found is not an upward shift since `recent`, the series is cut at its onset and
    searched again (binary segmentation, at most `MAX_SEARCHES` runs): a later change
    supersedes an earlier one, an older step up stands when nothing changed after it. The
    reason is the last search's."""
    found: list[tuple[Shift, MinuteSeries]] = []
    reason = ""
    for _search in range(MAX_SEARCHES):
        shift = _detect(series, stat, min_after)
        reason = shift.reason
        if shift.onset is None:
            break
        found = [(shift, series)] if _up(shift) else []
        if found and shift.onset >= recent:
            break
        series = tail(series, series.index(shift.onset))
    return found, reason


def confirm(series: MinuteSeries, rule: AlertRule, recent: datetime
            ) -> tuple[list[Confirmed], str]:
    """The confirmed upward shift of the rule's stat, as a list of at most one per stat
    watched (see `shifts_up`; none: the detector's reason)."""
    if rule.metric == "cost_per_hour":
        return _confirm_cost(series, rule, recent)
    found, reason = shifts_up(series, detector_stat(rule), rule.min_after, recent)
    return [Confirmed(s.onset, s.before, s.after, s.n_before, s.n_after, s.reason)
            for s, _ in found], reason


def _confirm_cost(series: MinuteSeries, rule: AlertRule, recent: datetime
                  ) -> tuple[list[Confirmed], str]:
    """Cost per hour moves with cost per call or with calls: a confirmed step up of cost per
    call, else one of calls per minute to at least the critical ratio, read as cost per hour
    before and from its onset."""
    reasons: list[str] = []
    confirmed: list[Confirmed] = []
    for stat in COST_STATS:
        found, reason = shifts_up(series, stat, rule.min_after, recent)
        reasons.append(f"{stat}: {reason}")
        for shift, searched in found:
            item = _as_cost(searched, rule, stat, shift, reasons)
            if item is not None:
                confirmed.append(item)
        if confirmed:
            return confirmed, confirmed[-1].reason
    return [], "; ".join(reasons)


def active_minutes(counts: np.ndarray) -> int:
    """Minutes of `counts` (calls per minute) outside runs of at least `SILENCE_MINUTES` empty
    ones: a route that went quiet and came back is judged against its traffic before the
    silence, not a rate the silence diluted (the return would look like a surge)."""
    empty = np.concatenate(([0], (counts == 0).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(empty))
    runs = edges[1::2] - edges[::2]
    return int(counts.size - runs[runs >= SILENCE_MINUTES].sum())


def _as_cost(series: MinuteSeries, rule: AlertRule, stat: str, shift: Shift,
             reasons: list[str]) -> Confirmed | None:
    """A shift of cost per call or calls per minute read as cost per hour before and from its
    onset (None, with the reason noted, when cost per hour did not rise enough)."""
    split = series.index(shift.onset)
    cost = np.nan_to_num(series.columns["cost_usd"], nan=0.0)
    at = int(series.bounds[split])
    first = int(series.minute_of[0]) if series.minute_of.size else split
    minutes_before = active_minutes(series.counts[first:split])
    minutes_after = len(series.minutes) - split
    if minutes_before <= 0 or minutes_after <= 0:
        return None
    before = float(cost[:at].sum()) * 60 / minutes_before
    after = float(cost[at:].sum()) * 60 / minutes_after
    if after <= before:
        reasons[-1] += "; cost per hour did not rise"
        return None
    if stat == "calls_per_min" and after < rule.critical * before:
        # more traffic at the same cost per call: news only at the critical level (a daily
        # ramp or a Monday morning is not an incident; a retry loop is)
        reasons[-1] += f"; ×{after / before:.1f} at the same cost per call"
        return None
    return Confirmed(shift.onset, before, after, at, int(series.bounds[-1]) - at,
                     f"{stat}: {shift.reason}")
