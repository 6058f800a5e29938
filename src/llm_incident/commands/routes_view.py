"""`routes`: the dashboard's overview as one compact reply — every route's headline stats with
their move against the range before, a flagged-rate trend, and what is going on with it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from llm_incident.commands.alert_views import sparkline
from llm_incident.commands.replies import Note, Reply, Section, Table
from llm_incident.dashboard.overview import COLUMNS, Row, overview_rows
from llm_incident.dashboard.ranges import RANGES
from llm_incident.metrics.compare import fmt

MAX_ROUTES = 25  # a Slack table stays readable; the dashboard lists them all


def routes_overview(session: Session, *, now: datetime, window: str) -> Reply:
    """The reply to `routes <window>` at `now`."""
    return routes_reply(overview_rows(session, now=now, rng=RANGES[window]), window)


def _cell(row: Row, column: str) -> str:
    cell = row.cells[column]
    value = fmt(cell.value, cell.kind)
    if column == "calls" or cell.value is None:
        return value
    mark = "⚠️ " if cell.regressed else ""
    return f"{mark}{'≈' if cell.approximate else ''}{value} ({cell.change})"


def _state(row: Row) -> str:
    words = list(row.controls)
    words += [f"🔴 {rule}" if level == "critical" else f"🟠 {rule}" for rule, level in row.alerts]
    words += [f"#{n}" for n in row.incidents]
    return ", ".join(words) or "—"


def routes_reply(rows: list[Row], window: str) -> Reply:
    """Regressed routes first, then by calls; at most `MAX_ROUTES`."""
    if not rows:
        text = "No route has sent an event yet."
        return Reply(text=text, blocks=(Section(text=text),))
    ordered = sorted(rows, key=lambda r: (not r.regressed, -(r.cells["calls"].value or 0), r.route))
    shown = ordered[:MAX_ROUTES]
    header = ("route", *(COLUMNS[c][0] for c in COLUMNS), f"flagged ({window})", "state")
    table = tuple((r.route, *(_cell(r, c) for c in COLUMNS), sparkline(r.spark), _state(r))
                  for r in shown)
    regressed = sum(r.regressed for r in rows)
    title = f"Routes over the last {window}"
    summary = (f"{len(rows)} route(s), {regressed} regressed vs the {window} before"
               + (f"; the first {MAX_ROUTES} shown" if len(rows) > MAX_ROUTES else ""))
    note = ("⚠️ worse than the window before · ≈ percentile from per-minute rollups (±1 %) · "
            "the dashboard at / has every route with charts")
    return Reply(text=f"{title}: {summary}",
                 blocks=(Section(title=title, text=summary), Table(header, table), Note(note)))
