"""Did the mitigation work? A route's key stats since a control change, against the incident window
before it and a baseline, judged by the alert rules for the stats that triggered the incident.

Windows: `since` = [change, now); `incident` = [onset, change), the onset being when the incident
began (detected or given; else its declaration; the 15 minutes before the change when that is less
than a minute before it); `baseline` = as long as `since`, just before the onset when the incident
has one (so the comparison is with the route before it went wrong, even on a fresh install), else
`since` shifted back 24 h.
The triggering stats are those of the alert the incident was started from (its "trigger" timeline
entry), else those its class points to (less any the route does not report, e.g. cost unpriced). Each is judged with the first rule for that metric on
the route (a route rule before a `*` rule, the built-in rule when none), comparing a ratio rule
with the baseline window above. `recovered` is True when every triggering stat is back at `ok`,
False when one is not, None when it cannot be told (too few calls since the change, e.g. after a
kill switch, or no value): only True marks the incident mitigated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session

from llm_incident.alerts.evaluate import OK, judge
from llm_incident.alerts.rules import ALL_ROUTES, DEFAULT_RULES, AlertRule
from llm_incident.incidents.models import Incident, IncidentClass, TimelineEntry
from llm_incident.metrics.stats import WindowStats, stats_for

SHOWN = ("flagged_rate", "p95_tokens_out", "p95_duration_ms", "error_rate", "cost_per_hour")
BY_CLASS: dict[str, tuple[str, ...]] = {
    IncidentClass.quality.value: ("flagged_rate",),
    IncidentClass.latency.value: ("p95_duration_ms",),
    IncidentClass.cost.value: ("p95_tokens_out", "cost_per_hour"),
    IncidentClass.provider.value: ("error_rate",),
    IncidentClass.unknown.value: ("flagged_rate", "p95_tokens_out", "p95_duration_ms",
                                  "error_rate"),
}
SHORT_INCIDENT = timedelta(minutes=1)
BEFORE_WHEN_SHORT = timedelta(minutes=15)
MIN_CHECK_CALLS = 10


@dataclass(frozen=True)
class StatCheck:
    """One stat in the three windows; `level` is set for triggering stats that could be judged."""

    metric: str
    label: str
    kind: str
    incident: float | None
    since: float | None
    baseline: float | None
    triggering: bool
    rule: AlertRule
    level: str | None = None


@dataclass(frozen=True)
class Recovery:
    route: str
    change_ts: datetime
    now: datetime
    since_calls: int
    incident_calls: int
    checks: list[StatCheck] = field(default_factory=list)
    recovered: bool | None = None
    reason: str = ""

    @property
    def still_bad(self) -> list[StatCheck]:
        return [c for c in self.checks if c.triggering and c.level not in (None, OK)]


def triggering_metrics(incident: Incident, entries: list[TimelineEntry], route: str
                       ) -> tuple[str, ...]:
    """The metrics of the alerts the incident was started from (on this route), else by class."""
    from_alerts = [e.after["metric"] for e in entries
                   if e.kind == "trigger" and e.after and e.after.get("route") == route]
    if from_alerts:
        return tuple(dict.fromkeys(from_alerts))
    return BY_CLASS.get(incident.incident_class, BY_CLASS[IncidentClass.unknown.value])


def rule_for_metric(rules: tuple[AlertRule, ...], metric: str, route: str) -> AlertRule:
    """The rule that judges `metric` on `route` (route rule, then `*` rule, then built-in)."""
    for wanted in (route, ALL_ROUTES):
        for rule in rules:
            if rule.metric == metric and rule.route == wanted and not rule.filter:
                return rule
    return next(r for r in DEFAULT_RULES if r.metric == metric)


def assess(session: Session, incident: Incident, entries: list[TimelineEntry], *, route: str,
           change_ts: datetime, now: datetime, rules: tuple[AlertRule, ...]) -> Recovery:
    """The three windows of every shown stat, and whether the triggering ones recovered."""
    onset = incident.onset_at
    before_start = min(onset, incident.started_at) if onset is not None else incident.started_at
    if change_ts - before_start < SHORT_INCIDENT:
        before_start = change_ts - BEFORE_WHEN_SHORT
    since = stats_for(session, route, change_ts, now)
    during = stats_for(session, route, before_start, change_ts)
    if onset is not None and onset < change_ts:
        base = stats_for(session, route, onset - (now - change_ts), onset)
    else:
        base = stats_for(session, route, change_ts - timedelta(days=1), now - timedelta(days=1))
    triggers = triggering_metrics(incident, entries, route)
    checks = []
    for metric in (*triggers, *(m for m in SHOWN if m not in triggers)):
        rule = rule_for_metric(rules, metric, route)
        values = [rule.watched.read(s, rule) for s in (during, since, base)]
        # a class metric the route never reports (e.g. cost without prices) does not count
        triggering = metric in triggers and (values[0] is not None or values[1] is not None)
        level = None
        if triggering and values[1] is not None and _enough(since, rule, now - change_ts):
            level = judge(rule, values[1], values[2])
        checks.append(StatCheck(metric, rule.label(), rule.watched.kind, *values,
                                triggering=triggering, rule=rule, level=level))
    recovered, reason = _verdict(checks, since)
    return Recovery(route, change_ts, now, since.calls, during.calls, checks, recovered, reason)


def _enough(since: WindowStats, rule: AlertRule, span: timedelta) -> bool:
    """Calls enough to judge: the rule's minimum, scaled to the span since the change."""
    scaled = rule.min_calls * min(1.0, span / rule.window_span)
    return since.calls >= max(MIN_CHECK_CALLS, int(scaled))


def _verdict(checks: list[StatCheck], since: WindowStats) -> tuple[bool | None, str]:
    triggering = [c for c in checks if c.triggering]
    if since.calls == 0:
        return None, "no calls since the change, so nothing to measure"
    if not triggering:
        return None, "none of the stats that point to this incident is reported by the route"
    unjudged = [c for c in triggering if c.level is None]
    bad = [c for c in triggering if c.level not in (None, OK)]
    if bad:
        return False, "still above the alert thresholds: " + ", ".join(
            f"{c.label} ({c.level})" for c in bad)
    if unjudged:
        return None, (f"only {since.calls} calls since the change, too few to judge "
                      + ", ".join(c.label for c in unjudged))
    return True, "back within the alert thresholds: " + ", ".join(c.label for c in triggering)
