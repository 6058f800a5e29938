"""Kill switches and mitigations through the command core (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from llm_incident.commands.core import CommandCore, card
from llm_incident.commands.context import Context
from llm_incident.commands.replies import Actions, Section, Target
from llm_incident.console.shell import ConsoleDelivery
from llm_incident.controls.service import control_history, get_controls
from llm_incident.events.ingest import ingest_events
from llm_incident.incidents import service as incidents

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)


def ctx(user="U_ANA", channel="C_ONCALL", minutes=0):
    return Context(user=user, channel=channel, now=NOW + timedelta(minutes=minutes))


def seed(db):
    with db.write() as session:
        ingest_events(session, [
            {"route": "support.reply", "model": m, "provider": p,
             "ts": (NOW - timedelta(minutes=i)).isoformat()}
            for i, (m, p) in enumerate([("gpt-4o-mini", "openai"), ("gpt-4o", "openai"),
                                        ("claude-3-5-haiku-latest", "anthropic")] * 3)
        ], now=NOW)


@pytest.fixture
def setup(db):
    seed(db)
    delivery = ConsoleDelivery()
    core = CommandCore(db, delivery)
    core.run("start support.reply cost tokens exploding", ctx())
    delivery.drain()
    return core, delivery


def buttons(reply):
    return [b for block in reply.blocks if isinstance(block, Actions) for b in block.buttons]


def test_opening_posts_include_a_panel_per_route(db):
    seed(db)
    delivery = ConsoleDelivery()
    CommandCore(db, delivery).run("start support.reply cost x", ctx())
    panel = next(p for p in delivery.drain()[0] if p.key == "incident:1:panel:support.reply")
    assert [b.label for b in buttons(panel.reply)] == [
        "Kill route", "Clamp tokens…", "Switch model…", "Switch provider…", "Retry cap…"]
    kill = buttons(panel.reply)[0]
    assert kill.command == "kill support.reply @v0" and kill.confirm is not None


def test_kill_posts_one_line_updates_panel_and_card_and_timeline(setup, db):
    core, delivery = setup
    outcome = core.run("kill support.reply", ctx(minutes=3))
    assert outcome.reply.text.startswith("Done: <@U_ANA> killed `support.reply`")
    posts, cards = delivery.drain()
    assert [(p.target, p.replace) for p in posts] == [(Target.thread, False), (Target.thread, True)]
    assert posts[1].key == "incident:1:panel:support.reply"
    assert [b.label for b in buttons(posts[1].reply)][0] == "Restore route"
    assert cards == [1]
    with db.read() as session:
        assert get_controls(session, "support.reply").enabled is False
        incident = incidents.get_incident(session, 1)
        entries = incidents.timeline(session, incident)
        fields = dict(card(session, incident).blocks[0].fields)
    assert entries[-1].kind == "control"
    assert entries[-1].before == {"support.reply": {"enabled": True}}
    assert entries[-1].after == {"support.reply": {"enabled": False}}
    assert fields["Mitigations"] == "support.reply: killed"


def test_double_click_applies_once_and_posts_once(setup, db):
    core, delivery = setup
    first = core.run("kill support.reply @v0", ctx())
    second = core.run("kill support.reply @v0", ctx())
    assert first.reply.text.startswith("Done:")
    assert second.reply.text.startswith("Not applied: `support.reply` changed since that button")
    posts, _ = delivery.drain()
    assert len([p for p in posts if not p.replace]) == 1
    with db.read() as session:
        outcomes = [c.outcome for c in control_history(session, route="support.reply")]
    assert outcomes == ["conflict", "applied"]


def test_refusal_when_not_a_responder_is_audited(db):
    seed(db)
    delivery = ConsoleDelivery()
    core = CommandCore(db, delivery, can_change=lambda user: user == "U_BOSS")
    core.run("start support.reply x", ctx())
    delivery.drain()
    refused = core.run("kill support.reply", ctx(user="U_INTERN"))
    assert "only responders" in refused.reply.text
    assert delivery.drain()[0] == []
    assert core.run("kill support.reply", ctx(user="U_BOSS")).reply.text.startswith("Done:")
    with db.read() as session:
        history = control_history(session, route="support.reply")
        assert [(c.outcome, c.actor) for c in history] == [
            ("applied", "U_BOSS"), ("refused", "U_INTERN")]
        assert get_controls(session, "support.reply").updated_by == "U_BOSS"


def test_clamp_for_a_duration_and_restore(setup, db):
    core, _ = setup
    reply = core.run("clamp support.reply 512 for 2h", ctx())
    assert "clamped `support.reply` to 512 output tokens (until 16:00 UTC)" in reply.reply.text
    with db.read() as session:
        state = get_controls(session, "support.reply")
    assert (state.max_tokens, state.expires_at) == (512, NOW + timedelta(hours=2))
    core.run("retries support.reply 0", ctx())
    restored = core.run("restore support.reply", ctx())
    assert "every control is back to its default" in restored.reply.text
    with db.read() as session:
        state = get_controls(session, "support.reply")
    assert (state.enabled, state.max_tokens, state.retry_cap) == (True, None, None)
    assert core.run("clamp support.reply off", ctx()).reply.text.startswith("Nothing to do")


def test_forms_offer_current_value_and_seen_models(setup, db):
    core, delivery = setup
    modal = core.run("model support.reply @v0", ctx()).modal
    choice = next(f for f in modal.fields if f.name == "choice")
    assert choice.options == ("claude-3-5-haiku-latest", "gpt-4o", "gpt-4o-mini", "off")
    assert modal.context == "model support.reply @v0"
    done = core.submit("control", {"choice": "gpt-4o-mini", "value": "", "duration": "1h"},
                       modal.context, ctx())
    assert "switched `support.reply` to model `gpt-4o-mini` (until 15:00 UTC)" in done.reply.text
    clamp = core.run("clamp support.reply @v1", ctx()).modal
    assert clamp.fields[0].initial is None
    empty = core.submit("control", {"value": "", "duration": "until restored"}, clamp.context, ctx())
    assert "enter a value" in empty.reply.text
    bad = core.submit("control", {"value": "lots", "duration": "until restored"}, clamp.context,
                      ctx())
    assert "`lots` is not a whole number" in bad.reply.blocks[0].text
    stale = core.submit("control", {"value": "300"}, "clamp support.reply @v0", ctx())
    assert stale.reply.text.startswith("Not applied")


def test_controls_verb_and_changes_outside_an_incident(db):
    seed(db)
    delivery = ConsoleDelivery()
    core = CommandCore(db, delivery)
    assert "No route has changed controls" in core.run("controls", ctx()).reply.text
    done = core.run("provider never.seen anthropic", ctx(channel="C_RANDOM"))
    assert done.reply.ephemeral is False
    assert "has sent no events yet" in done.reply.text
    assert delivery.drain() == ([], [])
    listing = core.run("controls", ctx()).reply
    assert "`never.seen` (prod): provider switched to anthropic" in listing.blocks[0].text
    panel = core.run("controls support.reply", ctx()).reply
    assert isinstance(panel.blocks[0], Section) and "support.reply" in panel.blocks[0].title
