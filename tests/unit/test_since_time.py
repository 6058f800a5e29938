"""`since <when>`: clock times (the latest not in the future), spans ago, RFC 3339; refusals."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from llm_incident.commands.parse import ParseError, parse_command
from llm_incident.commands.since import since_time

NOW = datetime(2026, 12, 2, 0, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize("text, expected", [
    ("00:05", datetime(2026, 12, 2, 0, 5, tzinfo=timezone.utc)),
    ("23:50", datetime(2026, 12, 1, 23, 50, tzinfo=timezone.utc)),  # after midnight: yesterday
    ("0:10", NOW),
    ("27m", NOW - timedelta(minutes=27)),
    ("1.5h", NOW - timedelta(minutes=90)),
    ("2026-12-01T23:00:00+01:00", datetime(2026, 12, 1, 22, 0, tzinfo=timezone.utc)),
])
def test_since_reads_clock_times_spans_and_timestamps(text, expected):
    assert since_time(text, NOW) == expected


@pytest.mark.parametrize("text, words", [
    ("24:00", "not understood"), ("12:60", "not understood"), ("yesterday", "not understood"),
    ("2026-12-01T23:00:00", "not understood"), ("1\x00:00", "not understood"),
    ("8d", "more than 7 days ago"), ("2026-12-03T00:00:00Z", "in the future"),
    ("0001-01-01T00:00:00Z", "more than 7 days ago"), ("9" * 400 + "m", "not understood"),
    ("9" * 20 + "m", "not understood"),
])
def test_since_refuses_what_it_cannot_place(text, words):
    with pytest.raises(ParseError) as caught:
        since_time(text, NOW)
    assert words in str(caught.value)


def test_since_is_parsed_after_the_class_and_before_the_symptom():
    cmd = parse_command("start support.reply latency since 23:50 slow since the deploy",
                        known_routes=["support.reply"])
    assert (cmd.since, cmd.symptom) == ("23:50", "slow since the deploy")
    plain = parse_command("start support.reply slow since the deploy", known_routes=["support.reply"])
    assert plain.since is None and plain.symptom == "slow since the deploy"
    words = parse_command("start support.reply since the deploy it is slow",
                          known_routes=["support.reply"])
    assert words.since is None and words.symptom == "since the deploy it is slow"
    with pytest.raises(ParseError, match="needs a time"):
        parse_command("start support.reply since", known_routes=["support.reply"])
