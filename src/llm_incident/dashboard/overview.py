"""The overview's rows: each known route's headline stats vs its baseline (`compare_windows`, the
numbers `GET /v1/routes/{route}/metrics?window=<range>` answers; ranges past
LLM_INCIDENT_EXACT_WINDOW_MAX read every route's rollups at once, `compare_routes`), a
flagged-rate sparkline, its controls in force, open incidents and firing alerts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from llm_incident.alerts.service import states as alert_states
from llm_incident.controls.service import list_controls
from llm_incident.controls.values import DEFAULT_ENV, ControlState
from llm_incident.dashboard.ranges import SPARK_BUCKETS, Range
from llm_incident.dashboard.series import flagged_sparklines
from llm_incident.events.routes import known_routes
from llm_incident.incidents.service import list_open
from llm_incident.metrics.compare import SKETCHED, Comparison, Delta, compare_windows, moved
from llm_incident.metrics.compare_routes import compare_routes
from llm_incident.metrics.windows import window_ending

# column → (label, stat of WindowStats, kind); higher is worse for each
COLUMNS = {
    "calls": ("calls", "calls", "count"),
    "flagged_rate": ("flagged rate", "flagged_rate", "rate"),
    "p95_duration_ms": ("p95 duration", "p95_duration_ms", "ms"),
    "p95_tokens_out": ("p95 tokens_out", "p95_tokens_out", "count"),
    "cost_per_hour": ("cost / hour", "total_cost_usd", "usd"),
}
WORSE_WHEN_UP = ("flagged_rate", "p95_duration_ms", "p95_tokens_out", "cost_per_hour")
SORTS = ("route", *COLUMNS)
FIRING = ("warning", "critical")


@dataclass
class Cell:
    """One number of a row, its baseline and whether it regressed."""

    value: float | None
    kind: str
    delta: Delta
    regressed: bool
    approximate: bool = False  # a percentile read from rollups (within 1 %)

    @property
    def change(self) -> str:
        """The move against the baseline in a few characters: "+2.0 pts", "+26%", "new"."""
        d = self.delta
        if d.abs is None:
            return "no baseline" if d.baseline is None else "n/a"
        if self.kind == "rate":
            points = round(d.abs * 100, 1)
            return "±0.0 pts" if points == 0 else f"{points:+.1f} pts"
        if d.rel is None:
            return "new" if d.abs else "±0"
        percent = round(d.rel * 100)
        return "±0%" if percent == 0 else f"{percent:+d}%"  # never "-0%"


@dataclass
class Row:
    route: str
    comparison: Comparison
    cells: dict[str, Cell]
    spark: list[float | None]
    controls: list[str] = field(default_factory=list)
    incidents: list[int] = field(default_factory=list)
    alerts: list[tuple[str, str]] = field(default_factory=list)  # (rule id, level)

    @property
    def regressed(self) -> bool:
        return any(c.regressed for c in self.cells.values())


def control_words(state: ControlState) -> list[str]:
    """What a changed control state does, in a few words ("killed", "max_tokens 512")."""
    words = [] if state.enabled else ["killed"]
    for name in ("max_tokens", "model", "provider", "retry_cap"):
        value = getattr(state, name)
        if value is not None:
            words.append(f"{name} {value}")
    if state.fallback_message and not state.enabled:
        words.append("fallback message")
    if words and state.env != DEFAULT_ENV:
        words = [f"{w} ({state.env})" for w in words]
    if words and state.expires_at is not None:
        words[-1] += f" until {state.expires_at:%m-%d %H:%M}"
    return words


def _cells(comparison: Comparison, hours: float) -> dict[str, Cell]:
    cells = {}
    for column, (_label, stat, kind) in COLUMNS.items():
        d = comparison.deltas[stat]
        value = d.now
        if column == "cost_per_hour" and value is not None:
            value = value / hours
        bad = (column in WORSE_WHEN_UP and d.abs is not None and d.abs > 0 and moved(d)
               and comparison.baseline_stats.calls > 0)
        cells[column] = Cell(value, kind, d, bad,
                             stat in SKETCHED and comparison.now.approximate)
    return cells


def overview_rows(session: Session, *, now: datetime, rng: Range) -> list[Row]:
    """A row per known route (sorted by name)."""
    window = window_ending(now, rng.span)
    hours = rng.span.total_seconds() / 3600
    spark = rng.spark_window(now)
    sparks = flagged_sparklines(session, spark.start, spark.end, SPARK_BUCKETS, now=now)
    controls: dict[str, list[str]] = defaultdict(list)
    for state in list_controls(session):
        controls[state.route] += control_words(state)
    incidents: dict[str, list[int]] = defaultdict(list)
    for incident in list_open(session):
        for route in incident.routes:
            incidents[route].append(incident.number)
    alerts: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for state in alert_states(session):
        if state.level in FIRING:
            alerts[state.route].append((state.rule_id, state.level))
    routes = known_routes(session)
    grouped = compare_routes(session, routes, now=now, window=window)  # long ranges: rollups
    rows = []
    for route in routes:
        comparison = (grouped[route] if grouped is not None
                      else compare_windows(session, route, now=now, window=window))
        rows.append(Row(route, comparison, _cells(comparison, hours),
                        sparks.get(route, [None] * SPARK_BUCKETS), controls.get(route, []),
                        sorted(incidents.get(route, [])), alerts.get(route, [])))
    return rows


def sort_rows(rows: list[Row], key: str, descending: bool) -> list[Row]:
    """Rows by route name or by a column's value (routes without a value last either way)."""
    if key not in COLUMNS:
        return sorted(rows, key=lambda r: r.route, reverse=descending)
    present = [r for r in rows if r.cells[key].value is not None]
    missing = [r for r in rows if r.cells[key].value is None]
    present.sort(key=lambda r: (r.cells[key].value, r.route), reverse=descending)
    return present + sorted(missing, key=lambda r: r.route)
