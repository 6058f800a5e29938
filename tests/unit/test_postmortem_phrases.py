"""Every sentence a postmortem writes about control decisions reads right, for every combination of
fields and values; what counts as a mitigation; one duration format; no "-0"."""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta, timezone

import pytest

from llm_incident.controls.values import DEFAULTS, FIELDS
from llm_incident.incidents.postmortem_markdown import delta_text, money
from llm_incident.incidents.postmortem_model import Decision
from llm_incident.incidents.postmortem_phrases import action_text, due_at, span
from llm_incident.metrics.compare import COMPARED

T0 = datetime(2026, 11, 26, 21, 0, 30, tzinfo=timezone.utc)
ROUTE = "support.reply"
SET = {"enabled": False, "max_tokens": 800, "model": "gpt-4o", "provider": "anthropic",
       "retry_cap": 1, "fallback_message": "Sorry, try later"}
WORDS = {"enabled": ("kill", "enabled"), "max_tokens": ("max_tokens", "token clamp"),
         "model": ("model",), "provider": ("provider",), "retry_cap": ("retr",),
         "fallback_message": ("fallback",)}


def decision(before, after, *, kind="change", env="prod", expires_at=None, ts=T0):
    return Decision(ts=ts, route=ROUTE, env=env, actor="U2", kind=kind, outcome="applied",
                    before=before, after=after, reason="", expires_at=expires_at)


def combinations():
    """Every non-empty set of fields, each set to a value or taken back to its default, as a
    change or an expiry, with and without an expiry time; plus the full restore."""
    for n in range(1, len(FIELDS) + 1):
        for names in itertools.combinations(FIELDS, n):
            for sets in itertools.product((True, False), repeat=n):
                after = {k: SET[k] if s else DEFAULTS[k] for k, s in zip(names, sets, strict=True)}
                before = {k: DEFAULTS[k] if s else SET[k] for k, s in zip(names, sets, strict=True)}
                yield decision(before, after)
                yield decision(before, after, expires_at=T0 + timedelta(minutes=10), env="eu")
                if not any(sets):
                    yield decision(before, after, kind="expiry")
    yield decision(dict(SET), dict(DEFAULTS))  # `restore`: every field back to its default


GARBLES = [r" on,", r" on$", r" on \(", r",\s*,", r"\band and\b", r"\bthe the\b", r"\bon on\b",
           r"\s{2,}", r"None", r"\bto none\b", r" \)", r"^[,;. ]", r"controls:$",
           r"\) \(", r"; also$"]


def test_every_combination_of_actions_reads_right():
    seen = 0
    for d in combinations():
        text = action_text(d)
        seen += 1
        for garble in GARBLES:
            assert not re.search(garble, text), (garble, text, d)
        assert text.count(f"`{ROUTE}`") == 1, text
        for name in d.changed:
            assert any(w in text for w in WORDS[name]), (name, text)
        if d.kind == "expiry":
            assert text.startswith("the ") and "expired" in text and "@" not in text
        else:
            assert text.startswith("@U2 ")
        if d.after.get("enabled") is False:
            assert text.startswith(f"@U2 killed `{ROUTE}`"), text
    assert seen > 700


def test_the_sentences_named_in_the_issue():
    both = decision({"max_tokens": 800, "retry_cap": 1}, {"max_tokens": None, "retry_cap": None})
    assert action_text(both) == "@U2 removed the token clamp and the retry cap on `support.reply`"
    restore = decision(dict(SET), dict(DEFAULTS))
    assert action_text(restore) == (
        "@U2 restored `support.reply` to its default controls: lifted the kill and removed the "
        "token clamp, the model override, the provider override, the retry cap and the fallback "
        "message")
    kill_clamp = decision({"enabled": True, "max_tokens": None}, {"enabled": False,
                                                                  "max_tokens": 300})
    assert action_text(kill_clamp) == "@U2 killed `support.reply`; also clamped max_tokens to 300"
    expiry = decision({"enabled": False}, {"enabled": True}, kind="expiry")
    assert action_text(expiry) == "the kill on `support.reply` expired"


def test_only_changes_away_from_the_defaults_are_mitigations():
    for d in combinations():
        away = any(d.after[k] != DEFAULTS[k] for k in d.changed)
        assert d.mitigates == (away and d.kind == "change"), action_text(d)
    refused = Decision(T0, ROUTE, "prod", "U9", "change", "refused", {}, {"enabled": False}, "",
                       None)
    assert not refused.mitigates


def test_an_expiry_is_shown_at_its_due_time():
    kill = decision({"enabled": True}, {"enabled": False}, expires_at=T0 + timedelta(minutes=10))
    late = decision({"enabled": False}, {"enabled": True}, kind="expiry",
                    ts=T0 + timedelta(minutes=10, seconds=35))  # the scheduler came by at 21:11:05
    assert due_at(late, [kill, late]) == kill.expires_at
    assert f"{due_at(late, [kill, late]):%H:%M}" == f"{kill.expires_at:%H:%M}" == "21:10"
    assert due_at(kill, [kill, late]) == kill.ts


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (49, "49s"), (60, "1m"), (72, "1m 12s"), (720, "12m"), (3600, "1h 0m"),
    (3725, "1h 2m"), (93784, "1d 2h 3m"), (-5, "0s")])
def test_one_duration_format(seconds, text):
    assert span(timedelta(seconds=seconds)) == text


def test_no_negative_zero_anywhere():
    values = [0.0, 1e-9, 0.0004, 0.001, 0.004, 0.0049, 0.005, 0.3, 0.994, 0.995, 0.996, 0.9999,
              1.0, 1.0001, 1.004, 1.005, 1.006, 2.0, 100.0]
    for stat in COMPARED:
        for base, now in itertools.product(values, repeat=2):
            text = delta_text(stat, now, base)
            assert not re.search(r"-0(\.0+)?(%| pts)", text), (stat, base, now, text)
    for usd in (0.0, -0.0, 1e-9, -1e-9, 0.00004, 0.5, 12.345):
        assert not money(usd).startswith("-") and "-0" not in money(usd)
