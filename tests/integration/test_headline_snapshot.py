"""The demo's provider-429 incident on both backends: the snapshot posted at the start and the
`metrics` reply lead with the error rate from 0 and show the 429 row, in the console and Slack."""

from __future__ import annotations

from datetime import datetime, timezone

from llm_incident.commands.core import CommandCore
from llm_incident.commands.context import Context
from llm_incident.console.render import render_reply
from llm_incident.console.shell import ConsoleDelivery
from llm_incident.demo import seed_demo
from llm_incident.slack.blocks import render_blocks

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
ROUTE = "docs.answer"


def _table_row(text: str, label: str) -> list[str]:
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith(label + " ")]
    return line.split()


def _bullets(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("• ")]


def test_provider_429_snapshot_leads_with_the_error_rate_and_shows_the_code(db):
    with db.write() as session:
        seed_demo(session, "provider-429", now=NOW)
    delivery = ConsoleDelivery()
    core = CommandCore(db, delivery, incident_channel="C_INCIDENTS")
    ctx = Context(user="U_ANA", channel="C_ONCALL", now=NOW, request_key=None)
    core.run(f"start {ROUTE} provider openai answers 429", ctx)
    posts, _ = delivery.drain()
    (snapshot,) = [p.reply for p in posts if p.key == f"incident:1:snapshot:{ROUTE}"]
    metrics = core.run(f"metrics {ROUTE} 30m", ctx).reply

    for reply in (snapshot, metrics):
        console = render_reply(reply)
        slack = "\n".join(b["text"]["text"] for b in render_blocks(reply) if "text" in b)
        for text in (console, slack):
            first = _bullets(text)[0]
            assert first.startswith("• error rate +") and " pts from 0 (" in first, text
            assert "avg tokens_out" not in first
        errors = _table_row(console, "errors 429")
        assert errors[2] == "0" and errors[3] == "(0.0%)" and errors[-1] == "pts"
        count, share = int(errors[4]), errors[5]
        assert count > 0 and share.startswith("(") and float(share.strip("(%)")) > 10
        assert _table_row(console, "error rate")[2] == "0.0%"
        assert _table_row(console, "retry share")[-2].startswith("+")
        assert _table_row(slack, "errors 429") == errors
        assert _table_row(slack, "error rate") == _table_row(console, "error rate")
