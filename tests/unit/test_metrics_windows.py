"""Window spans, explicit ranges and baseline windows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from llm_incident.metrics.windows import (
    Baseline,
    Window,
    WindowError,
    baseline_for,
    format_span,
    parse_range,
    parse_span,
    parse_timestamp,
    window_ending,
)

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text, expected", [
    ("30m", timedelta(minutes=30)), ("1h", timedelta(hours=1)), ("24h", timedelta(hours=24)),
    ("7d", timedelta(days=7)), ("90s", timedelta(seconds=90)), ("1.5h", timedelta(minutes=90)),
    (" 2W ", timedelta(weeks=2)),
])
def test_parse_span(text, expected):
    assert parse_span(text) == expected


@pytest.mark.parametrize("text, message", [
    ("", "not understood"), ("30", "not understood"), ("m30", "not understood"),
    ("1 h", "not understood"), ("-5m", "not understood"), ("1y", "not understood"),
    ("0s", "too short"), ("91d", "too long"),
])
def test_parse_span_errors_say_what_to_write(text, message):
    with pytest.raises(WindowError, match=message) as exc:
        parse_span(text)
    if message == "not understood":
        assert "30m, 1h, 24h, 7d" in str(exc.value)


def test_format_span_round_trips():
    for text in ("30m", "1h", "1d", "7d", "90s", "2w"):
        assert format_span(parse_span(text)) == ("1w" if text == "7d" else text)
    assert format_span(timedelta(hours=24)) == "1d"


def test_window_ending_now():
    window = window_ending(NOW, timedelta(minutes=30))
    assert window == Window(NOW - timedelta(minutes=30), NOW)
    assert window.minutes == 30
    assert window.to_dict() == {"start": "2026-11-26T13:30:00+00:00",
                                "end": "2026-11-26T14:00:00+00:00"}
    with pytest.raises(WindowError, match="timezone-aware"):
        window_ending(NOW.replace(tzinfo=None), timedelta(minutes=1))


def test_baselines():
    window = window_ending(NOW, timedelta(hours=1))
    assert baseline_for(window) == Baseline("previous", window.shifted(timedelta(hours=1)))
    assert baseline_for(window, "day").window.end == NOW - timedelta(days=1)
    assert baseline_for(window, "WEEK").window.start == NOW - timedelta(days=7, hours=1)
    explicit = baseline_for(window, "2026-11-19T10:00:00Z/2026-11-19T14:00:00+02:00")
    assert explicit.kind == "range"
    assert explicit.window == Window(datetime(2026, 11, 19, 10, tzinfo=timezone.utc),
                                     datetime(2026, 11, 19, 12, tzinfo=timezone.utc))
    assert explicit.to_dict()["kind"] == "range"
    assert baseline_for(window, explicit.window) == explicit
    assert baseline_for(window, explicit) is explicit
    with pytest.raises(WindowError, match="previous, day, week"):
        baseline_for(window, "yesterday")


def test_explicit_ranges_need_offsets_and_order():
    assert parse_range("2026-11-19T10:00:00Z/2026-11-19T11:00:00Z").span == timedelta(hours=1)
    assert parse_timestamp("2026-11-19T12:00:00+02:00") == datetime(2026, 11, 19, 10,
                                                                    tzinfo=timezone.utc)
    with pytest.raises(WindowError, match="UTC offset"):
        parse_range("2026-11-19T10:00:00/2026-11-19T11:00:00Z")
    with pytest.raises(WindowError, match="start must be before"):
        parse_range("2026-11-19T11:00:00Z/2026-11-19T10:00:00Z")
    with pytest.raises(WindowError, match="<start>/<end>"):
        parse_range("2026-11-19T11:00:00Z/")
    with pytest.raises(WindowError, match="not a timestamp"):
        parse_range("yesterday/today")


def test_a_window_of_hundreds_of_digits_is_too_long_not_a_crash():
    from llm_incident.metrics.windows import WindowError, parse_span

    with pytest.raises(WindowError, match="too long"):
        parse_span("9" * 400 + "m")
