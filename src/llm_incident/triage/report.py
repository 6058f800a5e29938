"""The triage of one route: onset, blast radius, attribution, likely cause, mitigations, deltas.

`triage()` composes the pieces:

1. shifts: `shifts.detect_route` over the lookback (default 6 h);
2. onset: `since` when given, else the earliest confident shift among the class's stats
   (`shifts.CLASS_STATS`; all stats when the class is unknown or none of its stats moved);
3. the main stat: the shifted stat at the onset (± `ONSET_TOLERANCE`), the class's order first,
   then confidence (with `since` and no shift: the class stat that moved most between windows);
4. blast radius, attribution and causes of the main stat, then the suggestions; the route's calls
   around the onset are read once for all of them (`read_frame_for`, a `triage.frame.CallFrame`)
   and the tail threshold comes off the detector's series;
5. metric deltas: baseline = the window just before the onset as long as onset → now (at least
   15 min, at most the lookback; `blast.comparison_windows`) vs now = onset → now, both from
   `metrics.stats.stats_for`, phrased by `metrics.compare.delta` as everywhere else.

No shift and no `since`: onset None and every field says "no shift found in the last 6 h".
`Triage.to_dict()` is the JSON of `GET /v1/routes/{route}/triage`; `runbook_fields()` answers
the runbook template's blanks (`FIELDS`); `lines()` is plain text for a Slack or console view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from llm_incident.incidents.runbook import (
    AFFECTED_CUSTOMERS,
    AFFECTED_ROUTES,
    METRIC_DELTAS,
    MODEL_PROVIDER,
    RECENT_CHANGE,
    START_TIME,
)
from llm_incident.metrics.compare import COMPARED, Delta, delta
from llm_incident.metrics.percentiles import percentiles
from llm_incident.metrics.scope import C, event_conditions
from llm_incident.metrics.stats import WindowStats, stats_for
from llm_incident.metrics.windows import Window
from llm_incident.triage.attribution import attribute, aware_utc, baseline_start, counts_window
from llm_incident.triage.blast import (ONSET_TOLERANCE, BlastRadius, blast_radius, change,
                                       comparison_windows, format_stat, stat_value,
                                       values_windows)
from llm_incident.triage.cause import NO_CHANGE, Cause, likely_causes
from llm_incident.triage.frame import CallFrame, read_frame
from llm_incident.triage.ranking import Attribution, explaining
from llm_incident.triage.shifts import CLASS_STATS, RouteShifts, Shift, detect_route
from llm_incident.triage.suggest import (Evidence, Suggestion, alternatives, health_window,
                                         suggestions)

# The runbook's four metric deltas (runbook.py: "Metrics deltas (baseline vs now): …").
DELTA_STATS = ("flagged_rate", "p95_duration_ms", "p95_tokens_out", "cost_per_call_usd")
# runbook_fields() keys: the runbook template's labels (incidents/runbook.py), then ours.
ATTRIBUTION, LIKELY_CAUSE, SUGGESTED = "Attribution", "Likely cause", "Suggested mitigations"
FIELDS = (START_TIME, AFFECTED_ROUTES, AFFECTED_CUSTOMERS, RECENT_CHANGE, MODEL_PROVIDER,
          METRIC_DELTAS, ATTRIBUTION, LIKELY_CAUSE, SUGGESTED)


@dataclass
class Triage:
    """Everything `triage()` found for one route (see the module docstring)."""

    route: str
    now: datetime
    lookback: timedelta
    incident_class: str
    shifts: RouteShifts
    onset: datetime | None = None
    onset_source: str | None = None  # "detected" | "since" | "alert" (set by the caller) | None
    main_stat: str | None = None
    main_shift: Shift | None = None
    blast: BlastRadius | None = None
    attributions: list[Attribution] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)
    baseline_window: Window | None = None
    current_window: Window | None = None
    baseline_stats: WindowStats | None = None
    now_stats: WindowStats | None = None
    deltas: dict[str, Delta] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return self.onset is not None

    @property
    def no_shift(self) -> str:
        minutes = self.lookback.total_seconds() / 60
        span = f"{minutes / 60:g} h" if minutes % 60 == 0 else f"{minutes:g} min"
        return f"no shift found in the last {span}"

    # --- the answers ---------------------------------------------------------------------

    def other_moves(self) -> list[str]:
        """Without an onset: drifts, and a traffic change (behaviour unchanged), as text."""
        out = []
        for shift in self.shifts.moved():
            if shift.kind == "drift" or shift.stat == "calls_per_min":
                when = "drifting since" if shift.kind == "drift" else "from"
                out.append(f"{_label(shift.stat)} {format_stat(shift.stat, shift.before)} → "
                           f"{format_stat(shift.stat, shift.after)} {when} "
                           f"{shift.onset:%H:%M}" if shift.onset else _label(shift.stat))
        return out

    def start_time(self) -> str:
        if self.onset is None:
            others = self.other_moves()
            return self.no_shift + (f" (no step; {'; '.join(others)})" if others else "")
        text = f"{self.onset:%Y-%m-%d %H:%M} UTC"
        if self.onset_source == "since":
            return text + " (given with `since`)"
        if self.onset_source == "alert":
            return text + " (the onset of the alert that started it)"
        shift = self.main_shift
        if shift is not None:
            text += (f" (detected: {_label(shift.stat)} {format_stat(shift.stat, shift.before)}"
                     f" → {format_stat(shift.stat, shift.after)}, {shift.kind}, "
                     f"confidence {shift.confidence:.2f})")
        return text

    def affected_routes(self) -> str:
        if self.blast is None:
            return self.no_shift
        others = [r.text() for r in self.blast.routes]
        examined = self.blast.routes_examined
        tail = (f"; also moved at the same onset: {'; '.join(others)}" if others
                else f"; no other route moved at the same onset ({examined} examined)"
                if examined else "; no other route has traffic")
        return self.route + tail

    def affected_customers(self) -> str:
        if self.blast is None:
            return self.no_shift
        parts = []
        for dim, label in (("customer_tier", "tiers"), ("env", "envs"), ("region", "regions")):
            moved = self.blast.affected(dim)
            seen = [v for v in self.blast.values if v.dimension == dim]
            if not seen:
                continue
            if moved and len(moved) == len(seen):
                names = ", ".join(v.value for v in moved)
                parts.append(f"all {label} ({names})")
            elif moved:
                parts.append(f"{label}: " + "; ".join(v.text() for v in moved))
            else:
                parts.append(f"no single {label[:-1]} stands out")
        return "; ".join(parts) if parts else "no customer tier, env or region reported"

    def recent_change(self) -> str:
        if self.onset is None:
            return self.no_shift
        return self.causes[0].text() if self.causes else NO_CHANGE

    def model_provider(self) -> str:
        if self.onset is None:
            return self.no_shift
        named = [a.text() for a in explaining(self.attributions)
                 if a.dimension in ("model", "provider")]
        changes = [c.text() for c in self.causes if c.kind == "model"]
        if named or changes:
            return "; ".join(named + [c for c in changes if c not in named])
        mix = self.now_stats.model_mix if self.now_stats else {}
        calls = sum(mix.values())
        shares = ", ".join(f"{m} {n / calls * 100:.0f} %" for m, n in mix.items()) if calls else ""
        return f"none recorded; no model explains the shift (mix now: {shares or 'n/a'})"

    def metric_deltas(self) -> str:
        if not self.deltas:
            return self.no_shift
        return "; ".join(d.verdict for d in self.deltas.values())

    def attribution_text(self) -> str:
        if self.onset is None:
            return self.no_shift
        explained = explaining(self.attributions)
        if explained:
            return "; ".join(a.text() for a in explained[:3])
        return "spread across the route's traffic: no single model, prompt, region, env or tier"

    def suggested_text(self) -> str:
        if self.onset is None:
            return self.no_shift
        if not self.suggestions:
            return "none from the data"
        return "; ".join(s.text + (f" (`{s.command}`)" if s.command else "")
                         for s in self.suggestions)

    def runbook_fields(self) -> dict[str, str]:
        """The runbook template's blanks, answered (keys: `FIELDS`)."""
        return {
            START_TIME: self.start_time(),
            AFFECTED_ROUTES: self.affected_routes(),
            AFFECTED_CUSTOMERS: self.affected_customers(),
            RECENT_CHANGE: self.recent_change(),
            MODEL_PROVIDER: self.model_provider(),
            METRIC_DELTAS: self.metric_deltas(),
            ATTRIBUTION: self.attribution_text(),
            LIKELY_CAUSE: self.recent_change(),
            SUGGESTED: self.suggested_text(),
        }

    def lines(self) -> list[str]:
        """Plain text / markdown lines for a Slack message or the console."""
        head = f"*Triage: {self.route}*"
        if self.onset is None:
            others = self.other_moves()
            return [head, self.no_shift.capitalize() + (
                f": no step; {'; '.join(others)}." if others else
                " (every stat within its noise).")]
        out = [head, f"Began: {self.start_time()}",
               f"Affected routes: {self.affected_routes()}",
               f"Affected customers: {self.affected_customers()}",
               f"Attribution: {self.attribution_text()}",
               f"Likely cause: {self.recent_change()}",
               f"Model/provider: {self.model_provider()}"]
        if self.baseline_window and self.current_window:
            out.append(f"Baseline {_span(self.baseline_window)} vs now "
                       f"{_span(self.current_window)}:")
            out += [f"• {d.verdict}" for d in self.deltas.values()]
        if self.suggestions:
            out.append("Suggested:")
            out += [f"• {s.text}" + (f" → `{s.command}`" if s.command else "")
                    for s in self.suggestions]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON for `GET /v1/routes/{route}/triage`."""
        return {
            "route": self.route,
            "now": self.now.isoformat(),
            "lookback_minutes": self.lookback.total_seconds() / 60,
            "incident_class": self.incident_class,
            "found": self.found,
            "onset": self.onset.isoformat() if self.onset else None,
            "onset_source": self.onset_source,
            "main_stat": self.main_stat,
            "shifts": self.shifts.to_dict(),
            "blast_radius": self.blast.to_dict() if self.blast else None,
            "attributions": [a.to_dict() for a in self.attributions],
            "causes": [c.to_dict() for c in self.causes],
            "suggestions": [s.to_dict() for s in self.suggestions],
            "baseline": self.baseline_window.to_dict() if self.baseline_window else None,
            "current": self.current_window.to_dict() if self.current_window else None,
            "deltas": {name: d.to_dict() for name, d in self.deltas.items()},
            "runbook_fields": self.runbook_fields(),
        }


def _label(stat: str) -> str:
    if stat.startswith("error_code_rate:"):
        return f"{stat.split(':', 1)[1]} error rate"
    return COMPARED.get(stat, (stat,))[0]


def _span(window: Window) -> str:
    return f"{window.start:%H:%M}–{window.end:%H:%M}"


def class_stats(incident_class: str) -> tuple[str, ...]:
    """The class's onset-defining stats (an unknown class: every stat but calls/min)."""
    return CLASS_STATS.get(incident_class) or CLASS_STATS["unknown"]


def _order(stat: str, stats: tuple[str, ...]) -> int:
    for i, name in enumerate(stats):
        if stat == name or (name.endswith("*") and stat.startswith(name[:-1])):
            return i
    return len(stats)


def _main_shift(shifts: RouteShifts, onset: datetime, stats: tuple[str, ...]) -> Shift | None:
    """The moved stat at `onset` (± tolerance): the class's order first, then confidence,
    then effect (`moved()` lists the largest effect first)."""
    near = [s for s in shifts.moved() if s.onset is not None
            and abs(aware_utc(s.onset) - onset) <= ONSET_TOLERANCE]
    if not near:
        return None
    if stats != CLASS_STATS["unknown"]:
        near.sort(key=lambda s: (_order(s.stat, stats), -round(s.confidence, 6)))
    return near[0]


def _moved_most(stats: tuple[str, ...], before: WindowStats, after: WindowStats) -> str:
    """With `since` and no shift: the stat whose value moved most between the windows."""
    def size(stat: str) -> float:
        moved = change(stat, stat_value(before, stat), stat_value(after, stat))
        if moved is None:
            return -1.0
        return abs(moved) * (10 if stat.endswith("_rate") or stat == "retry_share" else 1)
    return max(stats, key=lambda s: (size(s), -stats.index(s)))


def _p99_tokens_out(session: Session, route: str, onset: datetime, now: datetime,
                    lookback: timedelta, attributions: list[Attribution],
                    wanted: bool) -> float | None:
    """The pre-onset p99 tokens_out the clamp rounds up (the attribution's threshold when it
    counted calls above it); None when tokens_out did not rise."""
    if not wanted:
        return None
    for attribution in attributions[:1]:
        if attribution.stat == "p95_tokens_out" and attribution.threshold_p == 99.0:
            return attribution.threshold
    start = baseline_start(onset, now, lookback)
    found = percentiles(session, C.tokens_out, (99.0,), event_conditions(route, start, onset))
    return None if found[99.0] is None else float(found[99.0])


def read_frame_for(session: Session, route: str, onset: datetime, now: datetime,
              lookback: timedelta) -> CallFrame | None:
    """The route's calls over every window attribution, blast radius and the route's mix read
    around the onset (one read; see `triage.frame`)."""
    before, _ = comparison_windows(onset, now, lookback)
    near_before, near_after = values_windows(onset, now, lookback)
    windows = [counts_window(onset, now, lookback), (near_before.start, near_after.end),
               health_window(before.start, onset, now)]
    start, end = min(w[0] for w in windows), max(w[1] for w in windows)
    return read_frame(session, route, start, end) if start < end else None


def triage(session: Session, route: str, *, now: datetime, incident_class: str | None = None,
           since: datetime | None = None, lookback: timedelta = timedelta(hours=6),
           max_routes: int = 20) -> Triage:
    """The triage of `route` at `now` (see the module docstring)."""
    now = aware_utc(now)
    klass = incident_class or "unknown"
    shifts = detect_route(session, route, now=now, lookback=lookback)
    result = Triage(route, now, lookback, klass, shifts)
    wanted = class_stats(klass)
    if since is not None:
        onset, source = aware_utc(since), "since"
    else:
        onset = shifts.onset(wanted) or shifts.onset(CLASS_STATS["unknown"])
        source = "detected"
    if onset is None:
        return result
    onset = aware_utc(onset)
    result.onset, result.onset_source = onset, source
    before, after = comparison_windows(onset, now, lookback)
    result.baseline_window, result.current_window = before, after
    result.baseline_stats = base = stats_for(session, route, before.start, before.end)
    result.now_stats = current = stats_for(session, route, after.start, after.end)
    result.deltas = {stat: delta(stat, getattr(current, stat), getattr(base, stat),
                                 current.calls, base.calls) for stat in DELTA_STATS}
    main = _main_shift(shifts, onset, wanted)
    result.main_shift = main
    if main is not None:
        stat, rising = main.stat, (main.ratio is None or main.ratio >= 1)
    else:
        stat = _moved_most(tuple(s for s in wanted if not s.endswith("*")), base, current)
        moved = change(stat, stat_value(base, stat), stat_value(current, stat))
        rising = moved is None or moved >= 0
    result.main_stat = stat
    frame = read_frame_for(session, route, onset, now, lookback)
    result.blast = blast_radius(session, route, stat=stat, onset=onset, now=now,
                                lookback=lookback, max_routes=max_routes,
                                window_stats=(base, current), frame=frame)
    result.attributions = attribute(session, route, stat=stat, onset=onset, now=now,
                                    lookback=lookback, rising=rising, frame=frame,
                                    series=shifts.series)
    result.causes = likely_causes(session, result.blast.affected_routes(), onset=onset,
                                  attributions=result.attributions)
    rising_stats = {s.stat for s in shifts.moved() if s.ratio is None or s.ratio > 1}
    if main is None and rising:
        rising_stats.add(stat)
    p99 = _p99_tokens_out(session, route, onset, now, lookback, result.attributions,
                          "p95_tokens_out" in rising_stats)
    result.suggestions = suggestions(Evidence(
        route=route, incident_class=klass, rising=rising_stats, baseline=base, current=current,
        p99_tokens_out_before=p99,
        attributions=result.attributions, causes=result.causes,
        alternatives=alternatives(session, route, baseline_start=before.start, onset=onset,
                                  now=now, frame=frame),
    ))
    return result
