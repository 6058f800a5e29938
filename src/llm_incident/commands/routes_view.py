"""`routes`: the dashboard's overview as one compact reply — every route's headline stats with
their move against the range before, a flagged-rate trend, and what is going on with it.

`route_lines` writes the same rows as one line per route (the App Home); both read
`dashboard.overview.overview_rows`, so Slack, the console and the dashboard show one set of
numbers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from llm_incident.commands.alert_views import sparkline
from llm_incident.commands.links import NO_LINKS, DashboardLinks, link
from llm_incident.commands.replies import Block, Note, Reply, Section, Table
from llm_incident.dashboard.overview import COLUMNS, Row, overview_rows
from llm_incident.dashboard.ranges import RANGES
from llm_incident.metrics.compare import fmt

MAX_ROUTES = 25  # a Slack table stays readable; the dashboard lists them all
MAX_ROUTE_LINKS = 10  # route pages linked under the table (the first shown)


def routes_overview(session: Session, *, now: datetime, window: str,
                    links: DashboardLinks = NO_LINKS) -> Reply:
    """The reply to `routes <window>` at `now`."""
    return routes_reply(overview_rows(session, now=now, rng=RANGES[window]), window, links)


def ordered(rows: list[Row]) -> list[Row]:
    """Regressed routes first, then by calls (most first), then by name."""
    return sorted(rows, key=lambda r: (not r.regressed, -(r.cells["calls"].value or 0), r.route))


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


def routes_reply(rows: list[Row], window: str, links: DashboardLinks = NO_LINKS) -> Reply:
    """Regressed routes first, then by calls; at most `MAX_ROUTES`."""
    if not rows:
        text = "No route has sent an event yet."
        return Reply(text=text, blocks=(Section(text=text),))
    shown = ordered(rows)[:MAX_ROUTES]
    header = ("route", *(COLUMNS[c][0] for c in COLUMNS), f"flagged ({window})", "state")
    table = tuple((r.route, *(_cell(r, c) for c in COLUMNS), sparkline(r.spark), _state(r))
                  for r in shown)
    regressed = sum(r.regressed for r in rows)
    title = f"Routes over the last {window}"
    summary = (f"{len(rows)} route(s), {regressed} regressed vs the {window} before"
               + (f"; the first {MAX_ROUTES} shown" if len(rows) > MAX_ROUTES else ""))
    note = ("⚠️ worse than the window before · ≈ percentile from per-minute rollups (±1 %) · "
            "the dashboard at / has every route with charts")
    blocks: list[Block] = [Section(title=title, text=summary), Table(header, table), Note(note)]
    if links.base:
        pages = " · ".join(link(links.route(r.route, window) or "", r.route)
                           for r in shown[:MAX_ROUTE_LINKS])
        blocks.append(Note(f"📊 Dashboard: {link(links.overview(window) or '', 'overview')} · "
                           f"{pages}"))
    return Reply(text=f"{title}: {summary}", blocks=tuple(blocks))


def route_line(row: Row, links: DashboardLinks = NO_LINKS, window: str | None = None) -> str:
    """One route in a line: name (linked to its dashboard page), calls, each stat with its move,
    and its state (controls, firing alerts, open incidents)."""
    url = links.route(row.route, window)
    name = link(url, row.route) if url else "`" + row.route.replace("`", "'") + "`"
    stats = " · ".join(f"{COLUMNS[c][0]} {_cell(row, c)}" for c in COLUMNS if c != "calls")
    state = _state(row)
    return (f"{'⚠️ ' if row.regressed else ''}*{name}* · {_cell(row, 'calls')} calls · {stats}"
            + (f" · {state}" if state != "—" else ""))


def route_lines(rows: list[Row], window: str, *, limit: int,
                links: DashboardLinks = NO_LINKS) -> list[Block]:
    """The worst `limit` routes a line each (regressed first), and how many more there are."""
    title = f"Routes over the last {window}"
    if not rows:
        return [Section(title=title, text="No route has sent an event yet.")]
    shown = ordered(rows)[:limit]
    regressed = sum(r.regressed for r in rows)
    head = f"{len(rows)} route(s), {regressed} regressed vs the {window} before"
    blocks: list[Block] = [Section(title=title, text=head),
                           Section(text="\n".join(route_line(r, links, window) for r in shown))]
    more = len(rows) - len(shown)
    if more:
        blocks.append(Note(f"and {more} more — `/llm-incident routes {window}`"))
    return blocks
