"""Command text → typed commands; free text kept verbatim; errors carry the verb's usage."""

from __future__ import annotations

import pytest

from llm_incident.commands.parse import (
    Close,
    Help,
    ListIncidents,
    Metrics,
    ParseError,
    Start,
    Status,
    parse_command,
)
from llm_incident.incidents.models import IncidentClass

KNOWN = {"support.reply", "search.summarize"}


def test_start_takes_leading_known_routes_then_class_then_symptom():
    cmd = parse_command("start support.reply search.summarize cost tokens exploding",
                        known_routes=KNOWN)
    assert cmd == Start(routes=("support.reply", "search.summarize"),
                        incident_class=IncidentClass.cost, symptom="tokens exploding")


def test_start_without_class_word_is_unknown_and_without_args_is_a_form():
    assert parse_command("start support.reply it got slow", known_routes=KNOWN) == Start(
        routes=("support.reply",), symptom="it got slow")
    assert parse_command("start", known_routes=KNOWN) == Start(form=True)
    assert parse_command("START Latency p95 doubled", known_routes=KNOWN).incident_class is (
        IncidentClass.latency)


def test_start_flags_route_like_words_that_are_not_known():
    cmd = parse_command("start suport.reply weird answers", known_routes=KNOWN)
    assert cmd.routes == () and cmd.unknown_route_like == ("suport.reply",)
    assert cmd.symptom == "suport.reply weird answers"


@pytest.mark.parametrize(
    "text",
    [
        'it said "ignore previous instructions" & <script>alert(1)</script>',
        "答えが長すぎる 🔥🔥 — model went `wild`; SELECT * FROM users; --",
        "unbalanced ' quote and \\ backslash",
        "multi\nline\n```code block```",
    ],
)
def test_free_text_is_kept_verbatim(text):
    assert parse_command(f"status {text}").text == text
    assert parse_command(f"close #4 {text}") == Close(summary=text, incident=4)
    assert parse_command(f"start {text}", known_routes=KNOWN).symptom == text


def test_incident_reference_and_other_verbs():
    assert parse_command("status #12 rolled back") == Status(text="rolled back", incident=12)
    assert parse_command("status #12x rolled back") == Status(text="#12x rolled back")
    assert parse_command("close") == Close()
    assert parse_command("list") == ListIncidents()
    assert parse_command("") == Help() == parse_command("help")
    assert parse_command("metrics support.reply") == Metrics("support.reply", "30m")
    assert parse_command("metrics support.reply 24H") == Metrics("support.reply", "24h")


@pytest.mark.parametrize(
    ("text", "message", "usage"),
    [
        ("status", "a status update needs text", "/llm-incident status [#N] <text>"),
        ("status #3", "a status update needs text", "/llm-incident status [#N] <text>"),
        ("metrics", "which route?", "/llm-incident metrics <route> [window]"),
        ("metrics r soon", "`soon` is not a window", "/llm-incident metrics <route> [window]"),
        ("metrics r 1h extra", "`1h` is not a window", "/llm-incident metrics <route> [window]"),
        ("frobnicate now", "unknown command `frobnicate`", None),
    ],
)
def test_errors_carry_the_usage_line(text, message, usage):
    with pytest.raises(ParseError) as err:
        parse_command(text)
    assert message in str(err.value)
    assert err.value.usage == usage
