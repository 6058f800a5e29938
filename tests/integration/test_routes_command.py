"""`routes`: the dashboard's overview as one reply, in Slack and the console (both backends)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from llm_incident.commands.context import Context
from llm_incident.commands.core import CommandCore
from llm_incident.commands.replies import Table
from llm_incident.console.shell import ConsoleDelivery
from llm_incident.demo import seed_demo
from llm_incident.metrics.compare import compare_windows
from llm_incident.metrics.windows import window_ending

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def test_routes_lists_every_route_regressed_first_with_the_metrics_numbers(db):
    with db.write() as session:
        seed_demo(session, "token-explosion", now=NOW)
    core = CommandCore(db, ConsoleDelivery())
    ctx = Context(user="U1", channel="C1", now=NOW)
    core.run("clamp docs.answer 900", ctx)
    reply = core.run("routes", ctx).reply
    table = next(b for b in reply.blocks if isinstance(b, Table))
    rows = {row[0]: row for row in table.rows}
    assert table.rows[0][0] == "support.reply"  # the regressed route first
    assert set(rows) == {"support.reply", "search.summarize", "docs.answer", "billing.explain"}
    with db.read() as session:
        cmp = compare_windows(session, "support.reply", now=NOW,
                              window=window_ending(NOW, timedelta(hours=1)))
    assert rows["support.reply"][1] == f"{cmp.now.calls:,}"
    assert rows["support.reply"][4].startswith(f"⚠️ {cmp.now.p95_tokens_out:,.0f} (+")
    assert rows["docs.answer"][-1] == "max_tokens 900"
    assert "1 regressed" in reply.text
    assert not any("-0%" in cell or "-0.0 pts" in cell for row in table.rows for cell in row)


def test_routes_takes_the_dashboards_ranges_only(db):
    core = CommandCore(db, ConsoleDelivery())
    ctx = Context(user="U1", channel="C1", now=NOW)
    assert core.run("routes", ctx).reply.text == "No route has sent an event yet."
    bad = core.run("routes 2h", ctx).reply.text
    assert "`2h` is not a range; use 1h, 6h, 24h, 7d, 30d" in bad
