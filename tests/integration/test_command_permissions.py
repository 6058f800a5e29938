"""Who may do what through the command core, typed races, and closed incidents (SQLite, PostgreSQL)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from io import StringIO

import pytest

from llm_incident.commands.control_changes import raced_line
from llm_incident.commands.core import CommandCore
from llm_incident.commands.context import Context
from llm_incident.console.shell import ConsoleDelivery, Shell, console_permission
from llm_incident.controls.service import control_history, get_controls
from llm_incident.events.ingest import ingest_events
from llm_incident.incidents import service as incidents

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
THREAD = "console-1"


def ctx(user="U_BOSS", seconds=0.0, thread_ts=None):
    return Context(user=user, channel="C_ONCALL", now=NOW + timedelta(seconds=seconds),
                   thread_ts=thread_ts)


@pytest.fixture
def started(db):
    with db.write() as session:
        ingest_events(session, [{"route": r, "ts": NOW.isoformat()}
                                for r in ("support.reply", "search.summarize")], now=NOW)
    delivery = ConsoleDelivery()
    core = CommandCore(db, delivery, can_change=lambda user: user in ("U_BOSS", "U_ANA"))
    core.run("start support.reply cost tokens exploding", ctx())
    delivery.drain()
    return core, delivery


def history(db, route="support.reply"):
    with db.read() as session:
        return [(c.outcome, c.actor, c.incident) for c in control_history(session, route=route)]


def test_a_non_responder_cannot_close_and_the_refusal_is_in_the_timeline(started, db):
    core, delivery = started
    refused = core.run("close all good", ctx(user="U_INTERN"))
    assert "only responders (LLM_INCIDENT_RESPONDERS) may close incidents" in refused.reply.text
    assert delivery.drain()[0] == []
    with db.read() as session:
        incident = incidents.get_incident(session, 1)
        assert incident.status == "open"
        last = incidents.timeline(session, incident)[-1]
    assert (last.kind, last.actor) == ("refused", "U_INTERN")
    assert core.run("close all good", ctx()).reply.text == "Incident #1 closed."


def test_a_non_responder_gets_no_form_and_a_submitted_form_is_refused(started, db):
    core, _ = started
    opened = core.run("clamp support.reply @v0", ctx(user="U_INTERN"))
    assert opened.modal is None and "only responders" in opened.reply.text
    submitted = core.submit("control", {"value": "800", "duration": "until restored"},
                            "clamp support.reply @v0", ctx(user="U_INTERN"))
    assert "only responders" in submitted.reply.text
    assert core.run("clamp support.reply @v0", ctx()).modal is not None
    assert history(db) == [("refused", "U_INTERN", 1), ("refused", "U_INTERN", 1)]


def test_the_console_user_follows_the_same_rule(db):
    permission = console_permission(["U_BOSS", "S0GROUP"])
    out = StringIO()
    shell = Shell(db, user="intern", out=out, can_change=permission)
    shell.handle_line("kill support.reply")
    assert "only responders (LLM_INCIDENT_RESPONDERS)" in out.getvalue()
    Shell(db, user="U_BOSS", out=out, can_change=permission).handle_line("kill support.reply")
    assert "Done: @U_BOSS killed" in out.getvalue()
    assert console_permission([]) is None
    assert [o for o, _, _ in history(db)] == ["applied", "refused"]


class RacingDatabase:
    """The real database, except that two writers wait for each other first: both typed
    commands have read the controls before either writes."""

    def __init__(self, db):
        self.db = db
        self.barrier = threading.Barrier(2, timeout=30)

    def __getattr__(self, name):
        return getattr(self.db, name)

    @contextmanager
    def write(self):
        self.barrier.wait()
        with self.db.write() as session:
            yield session


def race(db, first: tuple[str, str], second: tuple[str, str]) -> dict[str, str]:
    core = CommandCore(RacingDatabase(db), ConsoleDelivery())
    answers: dict[str, str] = {}

    def run(user, text):
        answers[user] = core.run(text, ctx(user=user)).reply.text

    threads = [threading.Thread(target=run, args=pair) for pair in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(answers) == 2
    return answers


def test_two_typed_kills_at_once_apply_exactly_once(started, db):
    answers = race(db, ("U_ANA", "kill support.reply"), ("U_BOB", "kill support.reply"))
    [winner] = [u for u, text in answers.items() if text.startswith("Done:")]
    [loser] = [u for u in answers if u != winner]
    assert answers[loser] == (f"Not applied: <@{winner}> killed `support.reply` 0.0 s earlier; "
                              "nothing changed. Current controls:")
    assert sorted(o for o, _, _ in history(db)) == ["applied", "conflict"]
    with db.read() as session:
        state = get_controls(session, "support.reply")
    assert (state.enabled, state.version, state.updated_by) == (False, 1, winner)


def test_typed_changes_to_different_fields_both_apply(started, db):
    answers = race(db, ("U_ANA", "kill support.reply"), ("U_BOB", "clamp support.reply 800"))
    assert all(text.startswith("Done:") for text in answers.values()), answers
    with db.read() as session:
        state = get_controls(session, "support.reply")
    assert (state.enabled, state.max_tokens, state.version) == (False, 800, 2)


def test_a_typed_command_names_the_change_it_lost_to(started, db):
    core, _ = started
    core.run("kill support.reply", ctx(user="U_ANA"))
    core.run("restore support.reply", ctx(user="U_ANA", seconds=1))
    with db.read() as session:
        restored, killed = [c for c in control_history(session) if c.outcome == "applied"]
    assert raced_line(killed, "support.reply", NOW + timedelta(seconds=0.2)) == (
        "<@U_ANA> killed `support.reply` 0.2 s earlier")
    assert raced_line(restored, "support.reply", NOW + timedelta(minutes=5)) == (
        "<@U_ANA> restored `support.reply` at 14:00:01 UTC")


def closed(core, db):
    with db.write() as session:
        incidents.set_root_message(session, incidents.get_incident(session, 1),
                                   channel_id="C_ONCALL", ts=THREAD)
    core.run("kill support.reply", ctx(thread_ts=THREAD))
    core.run("close done", ctx(thread_ts=THREAD))


def test_a_closed_incidents_buttons_change_nothing(started, db):
    core, delivery = started
    closed(core, db)
    delivery.drain()
    before = history(db)
    for text, usage in (("restore support.reply @v1", "/llm-incident restore support.reply"),
                        ("clamp support.reply @v1", "/llm-incident clamp support.reply "
                                                    "<max_tokens>")):
        answer = core.run(text, ctx(thread_ts=THREAD))
        assert answer.modal is None
        assert answer.reply.text == (f"⚠️ incident #1 is closed; use `{usage}` to act now "
                                     "(nothing was changed)")
    assert history(db) == before and delivery.drain() == ([], [])
    with db.read() as session:
        assert get_controls(session, "support.reply").enabled is False


def test_the_postmortem_restore_button_acts_outside_the_incident(started, db):
    core, delivery = started
    closed(core, db)
    delivery.drain()
    answer = core.run("restore support.reply @v1 after-close", ctx(thread_ts=THREAD))
    assert answer.reply.text.startswith("Done: <@U_BOSS> restored `support.reply`")
    assert "change outside an incident (incident #1 is closed)" in answer.reply.text
    assert answer.reply.ephemeral
    assert history(db)[0] == ("applied", "U_BOSS", None)
    assert delivery.drain() == ([], [])
    with db.read() as session:
        assert get_controls(session, "support.reply").enabled is True
        kinds = [e.kind for e in incidents.timeline(session, incidents.get_incident(session, 1))]
    assert kinds.count("control") == 1
    typed = core.run("kill support.reply", ctx(thread_ts=THREAD))
    assert "change outside an incident" in typed.reply.text
    assert history(db)[0] == ("applied", "U_BOSS", None)


def test_a_closed_incidents_buttons_stay_inert_in_the_console(db):
    with db.write() as session:
        ingest_events(session, [{"route": "support.reply", "ts": NOW.isoformat()}], now=NOW)
    out = StringIO()
    shell = Shell(db, user="U_BOSS", out=out, read=lambda prompt: "yes")
    shell.handle_line("start support.reply tokens exploding")
    kill = next(i for i, b in enumerate(shell.buttons, 1) if b.label == "Kill route")
    shell.handle_line("clamp support.reply 800")
    shell.handle_line("close done")
    shell.handle_line(str(kill))
    assert "incident #1 is closed; use `kill support.reply` to act now" in \
        out.getvalue()
    with db.read() as session:
        state = get_controls(session, "support.reply")
    assert (state.enabled, state.max_tokens) == (True, 800)


def test_reopen_is_for_responders_and_makes_the_buttons_act_again(started, db):
    core, delivery = started
    closed(core, db)
    delivery.drain()
    refused = core.run("reopen #1 not fixed", ctx(user="U_INTERN"))
    assert "only responders (LLM_INCIDENT_RESPONDERS) may reopen incidents" in refused.reply.text
    assert delivery.drain() == ([], [])
    again = core.run("reopen not fixed after all", ctx(user="U_ANA", thread_ts=THREAD))
    assert again.reply.text == "Incident #1 reopened (open)."
    posts, cards = delivery.drain()
    assert [p.reply.text for p in posts] == [
        "🔴 <@U_ANA> reopened incident #1: not fixed after all. Its buttons act again; `close` "
        "posts a fresh postmortem draft."]
    assert cards
    restored = core.run("restore support.reply @v1", ctx(thread_ts=THREAD))
    assert restored.reply.text.startswith("Done: <@U_BOSS> restored `support.reply`")
    assert history(db)[0] == ("applied", "U_BOSS", 1)
    with db.read() as session:
        incident = incidents.get_incident(session, 1)
        kinds = [(e.kind, e.actor) for e in incidents.timeline(session, incident)]
    assert (incident.status, incident.closed_at) == ("open", None)
    assert ("refused", "U_INTERN") in kinds and ("reopen", "U_ANA") in kinds
    assert core.run("reopen #1", ctx()).reply.text == \
        "⚠️ incident #1 is open, not closed; nothing to reopen"
    assert core.run("close for real", ctx(thread_ts=THREAD)).reply.text == "Incident #1 closed."
    keys = [p.key for p in delivery.drain()[0]]
    assert "incident:1:postmortem" not in keys  # the first close's draft keeps its own key
    assert any(k.startswith("incident:1:postmortem:") for k in keys), keys
    assert any(k.startswith("incident:1:closed:") for k in keys), keys


def test_a_closed_incidents_evidence_buttons_change_nothing_but_typing_still_labels(started, db):
    core, delivery = started
    with db.write() as session:
        ingest_events(session, [{"event_id": "ev-1", "route": "support.reply",
                                 "ts": NOW.isoformat()}], now=NOW)
    closed(core, db)
    delivery.drain()
    pressed = Context(user="U_BOSS", channel="C_ONCALL", now=NOW, thread_ts=THREAD, via="button")
    for text, usage in (("attach #1 ev-1 good", "attach #1 ev-1 good"),
                        ("note #1 ev-1", "note #1 ev-1 <text>")):
        answer = core.run(text, pressed)
        assert answer.modal is None
        assert answer.reply.text == (f"⚠️ incident #1 is closed; use `/llm-incident {usage}` "
                                     "to act now (nothing was changed)")
    with db.read() as session:
        kinds = [e.kind for e in incidents.timeline(session, incidents.get_incident(session, 1))]
    assert "evidence" not in kinds and delivery.drain()[0] == []
    typed = core.run("attach #1 ev-1 bad wrong tone", ctx(thread_ts=THREAD))
    assert "1 event(s) attached or updated" in typed.reply.text
