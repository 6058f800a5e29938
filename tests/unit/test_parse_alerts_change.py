"""Parsing `alerts [start N]`, `change <route> [kind] <text>` and `mitigated [#N] [note]`."""

from __future__ import annotations

import pytest

from llm_incident.commands.parse import Alerts, ParseError, RecordChange, parse_command


def test_alerts():
    assert parse_command("alerts") == Alerts()
    assert parse_command("alerts start 12") == Alerts(start=12)
    assert parse_command("ALERTS Start 7") == Alerts(start=7)


@pytest.mark.parametrize("text", ["alerts start", "alerts start x", "alerts stop 3",
                                  "alerts start 3 4"])
def test_alerts_mistakes(text):
    with pytest.raises(ParseError) as info:
        parse_command(text)
    assert info.value.usage == "/llm-incident alerts [start <alert id>]"


def test_change_with_and_without_kind():
    assert parse_command("change support.reply prompt v14: shorter answers") == RecordChange(
        "support.reply", "prompt", "v14: shorter answers")
    assert parse_command("change support.reply rolled back to v13") == RecordChange(
        "support.reply", "other", "rolled back to v13")


@pytest.mark.parametrize(("text", "message"), [("change", "which route?"),
                                               ("change support.reply deploy", "say what changed")])
def test_change_mistakes(text, message):
    with pytest.raises(ParseError, match=message):
        parse_command(text)


def test_mitigated():
    from llm_incident.commands.parse import Mitigated

    assert parse_command("mitigated") == Mitigated()
    assert parse_command("mitigated #4 kill switch holds") == Mitigated("kill switch holds", 4)
