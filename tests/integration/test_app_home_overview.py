"""The App Home's routes overview (both backends): the worst routes of `/llm-incident routes`, a
line each with the same numbers, bounded for Slack's 100 blocks, linked to the dashboard when
LLM_INCIDENT_DASHBOARD_URL is set; and the overview reused for a few seconds between publishes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from slack_sdk.models.views import View

from llm_incident.commands.context import Context
from llm_incident.commands.core import CommandCore
from llm_incident.commands.links import DashboardLinks
from llm_incident.commands.replies import Table
from llm_incident.console.shell import ConsoleDelivery
from llm_incident.events.ingest import ingest_events
from llm_incident.slack.home import MAX_HOME_ROUTES, HomeTab
from tests.blockkit import view_problems

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
MESSY = "support <b> & 'ünïcode' reply|x"


def seed_routes(db, n: int, *, regressed_every: int = 10) -> list[str]:
    """`n` routes with calls in the last hour and the hour before; every `regressed_every`-th
    got flagged answers and longer ones in the last hour."""
    routes = [f"route.{i:03d}" for i in range(n)]
    events = []
    for i, route in enumerate(routes):
        bad = i % regressed_every == 0
        for k in range(6):
            recent = k < 3
            events.append({"event_id": f"{route}-{k}", "route": route,
                           "ts": (NOW - timedelta(minutes=10 + 20 * k)).isoformat(),
                           "model": "gpt-4o-mini", "tokens_in": 100,
                           "tokens_out": 2000 if (bad and recent) else 200,
                           "duration_ms": 900.0 if (bad and recent) else 300.0,
                           "status": "flagged" if (bad and recent) else "ok"})
    with db.write() as session:
        ingest_events(session, events, now=NOW)
    return routes


def section_texts(view: dict) -> list[str]:
    out = []
    for block in view["blocks"]:
        out.append((block.get("text") or {}).get("text", ""))
        out.extend(e["text"] for e in block.get("elements") or [] if e.get("type") == "mrkdwn")
    return out


def test_home_lists_the_worst_routes_first_bounded_and_valid_with_200_routes(db):
    seed_routes(db, 200)
    view = HomeTab(db).view(NOW)
    assert not view_problems(view), view_problems(view)
    View(**view).validate_json()  # slack_sdk's own model of a view
    assert len(view["blocks"]) <= 100
    text = "\n".join(section_texts(view))
    listed = [line for line in text.splitlines() if line.startswith(("⚠️ *`route.", "*`route."))]
    assert len(listed) == MAX_HOME_ROUTES
    # the 20 regressed routes come first (then by calls, then by name)
    assert all(line.startswith("⚠️ ") for line in listed)
    assert listed[0].startswith("⚠️ *`route.000`*")
    assert "200 route(s), 20 regressed vs the 1h before" in text
    assert f"and {200 - MAX_HOME_ROUTES} more — `/llm-incident routes 1h`" in text
    assert "dashboard" not in text.lower().replace("the dashboard at /", "")  # no URL set: no links


def test_home_lines_carry_the_routes_commands_numbers(db):
    seed_routes(db, 12, regressed_every=4)
    core = CommandCore(db, ConsoleDelivery())
    table = next(b for b in core.run("routes", Context(user="U1", channel="C1", now=NOW))
                 .reply.blocks if isinstance(b, Table))
    text = "\n".join(section_texts(HomeTab(db).view(NOW)))
    for row in table.rows:
        line = next(li for li in text.splitlines() if f"`{row[0]}`" in li)
        # calls, flagged rate, p95 duration, p95 tokens_out, cost/hour with their moves
        assert f"{row[1]} calls" in line
        for cell in row[2:6]:
            assert cell.replace("<", "&lt;") in line, (cell, line)
        assert line.startswith("⚠️ ") == any(c.startswith("⚠️") for c in row[2:6])


def test_home_links_routes_and_incidents_to_the_dashboard_when_configured(db):
    routes = seed_routes(db, 3)
    with db.write() as session:
        ingest_events(session, [{"event_id": "messy-1", "route": MESSY,
                                 "ts": (NOW - timedelta(minutes=5)).isoformat()}], now=NOW)
    core = CommandCore(db, ConsoleDelivery())
    core.run(f"start {routes[0]} quality it promised refunds",
             Context(user="U1", channel="C1", now=NOW))
    core.run(f"kill {routes[1]}", Context(user="U1", channel="C2", now=NOW))
    view = HomeTab(db, links=DashboardLinks("https://dash.example/base/")).view(NOW)
    assert not view_problems(view), view_problems(view)
    text = "\n".join(section_texts(view))
    quoted = "support%20%3Cb%3E%20%26%20%27%C3%BCn%C3%AFcode%27%20reply%7Cx"
    assert (f"*<https://dash.example/base/routes/{quoted}?range=1h|"
            "support &lt;b&gt; &amp; 'ünïcode' reply¦x>*") in text
    assert f"*<https://dash.example/base/routes/{routes[0]}?range=1h|{routes[0]}>*" in text
    assert "<https://dash.example/base/incidents/1|dashboard>" in text
    assert "<https://dash.example/base/?range=1h|dashboard>" in text
    line = next(li for li in text.splitlines() if f"|{routes[0]}>*" in li)
    assert line.endswith("#1")  # its open incident
    assert next(li for li in text.splitlines() if f"|{routes[1]}>*" in li).endswith("killed")


def test_home_reuses_the_overview_for_its_ttl_then_reads_again(db):
    seed_routes(db, 2)
    home = HomeTab(db, ttl=timedelta(seconds=30))
    first = "\n".join(section_texts(home.view(NOW)))
    assert "2 route(s)" in first
    with db.write() as session:
        ingest_events(session, [{"event_id": "new-1", "route": "route.new",
                                 "ts": (NOW - timedelta(minutes=1)).isoformat()}], now=NOW)
    cached = "\n".join(section_texts(home.view(NOW + timedelta(seconds=29))))
    assert "2 route(s)" in cached and "route.new" not in cached
    fresh = "\n".join(section_texts(home.view(NOW + timedelta(seconds=30))))
    assert "3 route(s)" in fresh and "`route.new`" in fresh
