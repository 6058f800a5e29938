"""Route controls domain: defaults, compare-and-set, validation, audit, refusals, expiry — on both backends."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from llm_incident.controls.models import Outcome
from llm_incident.controls.service import (
    CHANGED_KEY,
    ControlError,
    change_controls,
    control_history,
    controls_fingerprint,
    get_controls,
    list_controls,
    record_refusal,
    revert_expired,
)
from llm_incident.events.ingest import ingest_events

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


def change(db, changes=None, *, route="support.reply", env="prod", now=NOW, **kw):
    kw.setdefault("actor", "U_ANA")
    kw.setdefault("reason", "test")
    with db.write() as session:
        return change_controls(session, route, env, {"enabled": False} if changes is None else changes, now=now, **kw)


def state(db, route="support.reply", env="prod"):
    with db.read() as session:
        return get_controls(session, route, env)


def test_a_route_never_changed_reads_as_defaults_at_version_zero(db):
    got = state(db, "never.changed")
    assert (got.route, got.env, got.enabled, got.version) == ("never.changed", "prod", True, 0)
    assert got.values() == {"enabled": True, "max_tokens": None, "model": None, "provider": None,
                            "retry_cap": None, "fallback_message": None}
    assert got.updated_at is None and got.updated_by is None and got.expires_at is None


def test_first_change_creates_version_one_and_each_change_increments(db):
    first = change(db, changes={"enabled": False, "fallback_message": "  Back soon. "})
    assert first.outcome is Outcome.applied and first.applied
    assert first.before == {"enabled": True, "fallback_message": None}
    assert first.after == {"enabled": False, "fallback_message": "Back soon."}
    got = state(db)
    assert (got.version, got.enabled, got.fallback_message, got.updated_by) == (1, False, "Back soon.", "U_ANA")
    assert got.updated_at == NOW and got.updated_at.tzinfo is not None
    second = change(db, changes={"max_tokens": 512}, actor="U_BO", now=NOW + MIN)
    assert second.controls.version == 2 and second.controls.max_tokens == 512
    assert state(db).enabled is False  # untouched fields keep their value


def test_compare_and_set_turns_a_second_click_into_a_conflict(db):
    assert change(db, expected_version=0).applied
    again = change(db, expected_version=0, now=NOW + MIN)  # the double click carries the old version
    assert again.outcome is Outcome.conflict and not again.applied
    assert again.controls.version == 1
    assert change(db, {"enabled": True}, expected_version=1).applied
    assert state(db).version == 2 and state(db).enabled is True


def test_conflict_on_a_route_without_a_row_stores_nothing_but_the_audit(db):
    result = change(db, expected_version=3)
    assert result.outcome is Outcome.conflict
    assert state(db).version == 0
    with db.read() as session:
        [entry] = control_history(session, route="support.reply")
    assert (entry.outcome, entry.version, entry.after) == ("conflict", 0, {"enabled": False})


def test_same_values_without_expiry_are_unchanged_and_not_stored(db):
    change(db)
    again = change(db)  # kill an already killed route, no expected_version
    assert again.outcome is Outcome.unchanged
    assert state(db).version == 1
    with db.read() as session:
        assert len(control_history(session)) == 1


@pytest.mark.parametrize("changes, message", [
    ({"max_tokens": 0}, "max_tokens must be between 1 and 1,000,000"),
    ({"max_tokens": 1_000_001}, "max_tokens must be between"),
    ({"max_tokens": "512"}, "max_tokens must be a whole number"),
    ({"max_tokens": True}, "max_tokens must be a whole number"),
    ({"retry_cap": 21}, "retry_cap must be between 0 and 20"),
    ({"retry_cap": -1}, "retry_cap must be between"),
    ({"model": "  "}, "model must be a non-empty string"),
    ({"provider": "x" * 201}, "provider must be at most 200"),
    ({"fallback_message": "x" * 2001}, "fallback_message must be at most 2,000"),
    ({"enabled": "no"}, "enabled must be true or false"),
    ({"colour": "red"}, "unknown control 'colour'"),
    ({}, "nothing to change"),
])
def test_bad_values_are_refused_with_a_message_and_nothing_is_stored(db, changes, message):
    with pytest.raises(ControlError, match=message):
        change(db, changes=changes)
    assert state(db).version == 0
    with db.read() as session:
        assert control_history(session) == []


def test_boundary_values_are_accepted_and_none_clears_an_override(db):
    assert change(db, {"max_tokens": 1, "retry_cap": 0, "model": "m" * 200}).applied
    assert change(db, {"max_tokens": 1_000_000, "retry_cap": 20}).applied
    assert change(db, {"max_tokens": None, "model": None}).applied
    got = state(db)
    assert (got.max_tokens, got.model, got.retry_cap) == (None, None, 20)


def test_bad_request_metadata_is_refused(db):
    with pytest.raises(ControlError, match="actor"):
        change(db, actor=" ")
    with pytest.raises(ControlError, match="route"):
        change(db, route="")
    with pytest.raises(ControlError, match="expected_version"):
        change(db, expected_version=-1)
    with pytest.raises(ControlError, match="in the future"):
        change(db, expires_at=NOW)
    with pytest.raises(ControlError, match="timezone-aware"):
        change(db, expires_at=datetime(2030, 1, 1))


def test_every_attempt_is_in_the_audit_history_with_who_why_and_incident(db):
    change(db, {"max_tokens": 512}, reason="token explosion", incident=7, expected_version=0)
    change(db, {"max_tokens": 256}, actor="U_BO", reason="late click", incident=7, expected_version=0,
           now=NOW + MIN)
    with db.write() as session:
        record_refusal(session, "support.reply", "prod", {"enabled": False}, actor="U_EVE",
                       reason="not a responder", incident=7, now=NOW + 2 * MIN)
    with db.read() as session:
        entries = control_history(session, incident=7)
    assert [(e.outcome, e.actor, e.reason, e.version) for e in entries] == [
        ("refused", "U_EVE", "not a responder", 1),
        ("conflict", "U_BO", "late click", 1),
        ("applied", "U_ANA", "token explosion", 1),
    ]
    applied = entries[-1]
    assert (applied.fields, applied.before, applied.after) == (["max_tokens"], {"max_tokens": None},
                                                               {"max_tokens": 512})
    assert applied.ts == NOW and applied.incident == 7


def test_a_refusal_changes_nothing(db):
    with db.write() as session:
        result = record_refusal(session, "support.reply", "prod", {"enabled": False}, actor="U_EVE",
                                reason="not a responder", now=NOW)
    assert result.outcome is Outcome.refused and not result.applied
    assert state(db).version == 0 and state(db).enabled is True


def test_unknown_routes_are_allowed_with_a_warning(db):
    with db.write() as session:
        ingest_events(session, [{"route": "known.route"}], now=NOW)
    assert change(db, route="known.route").warnings == ()
    result = change(db, route="typo.route")
    assert result.applied
    assert result.warnings and "has sent no events" in result.warnings[0]


def test_envs_are_separate(db):
    change(db, env="staging")
    assert state(db, env="staging").enabled is False
    assert state(db, env="prod").version == 0


def test_list_controls_covers_changed_and_known_routes(db):
    with db.write() as session:
        ingest_events(session, [{"route": "b.route"}, {"route": "a.route"}], now=NOW)
    change(db, route="a.route")
    change(db, route="c.route", env="staging")
    with db.read() as session:
        everything = [(s.route, s.env, s.version) for s in list_controls(session)]
        prod = [(s.route, s.env, s.version) for s in list_controls(session, env="prod")]
        some = [(s.route, s.version) for s in list_controls(session, env="prod", routes=["a.route", "x"])]
    assert everything == [("a.route", "prod", 1), ("b.route", "prod", 0), ("c.route", "staging", 1)]
    assert prod == [("a.route", "prod", 1), ("b.route", "prod", 0)]
    assert some == [("a.route", 1), ("x", 0)]


def test_fingerprint_grows_with_every_change(db):
    with db.read() as session:
        start = controls_fingerprint(session)
    change(db)
    change(db, route="other")
    change(db, {"enabled": True})
    with db.read() as session:
        assert controls_fingerprint(session) == start + 3


def test_a_committed_change_is_left_in_session_info_for_commit_hooks(db):
    seen = []
    db.commit_hooks.append(lambda session: seen.append(set(session.info.get(CHANGED_KEY, ()))))
    change(db)
    change(db)  # unchanged: nothing to announce
    assert seen == [{("support.reply", "prod")}, set()]


def test_expiry_restores_the_previous_values(db):
    change(db, {"max_tokens": 512}, expires_at=NOW + 120 * MIN, incident=4)
    assert state(db).expires_at == NOW + 120 * MIN
    with db.write() as session:
        assert revert_expired(session, NOW + 119 * MIN) == []
    with db.write() as session:
        [reverted] = revert_expired(session, NOW + 121 * MIN)
    assert (reverted.route, reverted.env, reverted.incident) == ("support.reply", "prod", 4)
    assert (reverted.before, reverted.after, reverted.version) == ({"max_tokens": 512}, {"max_tokens": None}, 2)
    got = state(db)
    assert (got.max_tokens, got.expires_at, got.version, got.updated_by) == (None, None, 2, "llm-incident")
    with db.write() as session:
        assert revert_expired(session, NOW + 200 * MIN) == []  # once only
        [entry, _] = control_history(session)
    assert (entry.kind, entry.outcome, entry.before, entry.after) == (
        "expiry", "applied", {"max_tokens": 512}, {"max_tokens": None})


def test_expiry_falls_back_to_the_permanent_value_underneath(db):
    change(db, {"max_tokens": 1000})
    change(db, {"max_tokens": 256, "model": "small"}, expires_at=NOW + 60 * MIN)
    with db.write() as session:
        [reverted] = revert_expired(session, NOW + 61 * MIN)
    assert reverted.after == {"max_tokens": 1000, "model": None}
    assert (state(db).max_tokens, state(db).model) == (1000, None)


def test_a_permanent_change_made_after_a_temporary_one_stays(db):
    change(db, {"max_tokens": 512}, expires_at=NOW + 60 * MIN)
    change(db, {"max_tokens": 300}, now=NOW + 10 * MIN)
    assert state(db).expires_at is None  # nothing temporary is in force any more
    with db.write() as session:
        assert revert_expired(session, NOW + 61 * MIN) == []
    assert state(db).max_tokens == 300


def test_stacked_temporary_changes_unwind_in_turn(db):
    change(db, {"max_tokens": 512}, expires_at=NOW + 120 * MIN)
    change(db, {"max_tokens": 256}, expires_at=NOW + 60 * MIN, now=NOW + MIN)
    assert state(db).expires_at == NOW + 60 * MIN
    with db.write() as session:
        [first] = revert_expired(session, NOW + 61 * MIN)
    assert first.after == {"max_tokens": 512} and state(db).expires_at == NOW + 120 * MIN
    with db.write() as session:
        [second] = revert_expired(session, NOW + 121 * MIN)
    assert second.after == {"max_tokens": None} and state(db).expires_at is None


def test_a_change_after_an_overdue_expiry_reverts_it_first(db):
    change(db, {"enabled": False}, expires_at=NOW + 10 * MIN)
    change(db, {"model": "small"}, now=NOW + 20 * MIN)  # the scheduler has not run yet
    got = state(db)
    assert (got.enabled, got.model, got.expires_at, got.version) == (True, "small", None, 3)


def test_concurrent_first_clicks_apply_exactly_once(db):
    barrier = threading.Barrier(8)

    def click(n: int) -> Outcome:
        barrier.wait()
        return change(db, route="fresh.route", actor=f"U{n}", expected_version=0).outcome

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(click, range(8)))
    assert sorted(outcomes) == [Outcome.applied] + [Outcome.conflict] * 7
    assert state(db, "fresh.route").version == 1


def test_a_failing_commit_hook_does_not_undo_the_change(db):
    def broken(_session):
        raise RuntimeError("boom")

    db.commit_hooks.append(broken)
    assert change(db).applied
    assert state(db).version == 1
