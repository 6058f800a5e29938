"""route_chart_png: a readable PNG from plain series data, deterministic, headless."""

from __future__ import annotations

import struct
import sys
from datetime import datetime, timedelta, timezone

from llm_incident.charts import route_chart_png
from llm_incident.incidents.postmortem_model import ChartPoint, ChartSeries, Marker

T0 = datetime(2026, 11, 26, 13, 0, tzinfo=timezone.utc)
BUCKET = timedelta(minutes=5)


def series(points: int = 24, empty: bool = False) -> ChartSeries:
    rows = []
    for i in range(points):
        hot = 12 <= i < 15
        quiet = empty or i == 7  # a bucket without calls leaves a gap
        rows.append(ChartPoint(
            ts=T0 + i * BUCKET, calls=0 if quiet else 30,
            p95_tokens_out=None if quiet else (2800 if hot else 350 + i),
            p95_duration_ms=None if quiet else (3900.5 if hot else 1100.0 + 10 * i),
            flagged_rate=None if quiet else (0.18 if hot else 0.01)))
    return ChartSeries("support.reply", T0, T0 + points * BUCKET, BUCKET, rows)


MARKERS = [
    Marker(T0 + timedelta(hours=1), "start", "start"),
    Marker(T0 + timedelta(minutes=72), "max_tokens=800", "mitigation"),
    Marker(T0 + timedelta(minutes=80), "enabled=false and a label far longer than forty chars",
           "mitigation"),
    Marker(T0 + timedelta(hours=2), "close", "close"),
]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_chart_is_a_non_trivial_png_and_deterministic():
    first = route_chart_png(series(), MARKERS)
    assert png_size(first) == (1000, 750) and len(first) > 20_000
    assert route_chart_png(series(), MARKERS) == first  # no timestamp or version in the file
    assert b"Software" not in first


def test_empty_series_and_markers_outside_the_window_do_not_fail():
    data = route_chart_png(series(empty=True), [Marker(T0 - timedelta(days=1), "old", "start")])
    assert png_size(data) == (1000, 750)
    assert png_size(route_chart_png(series(points=1), [], width=6, height=4.5)) == (600, 450)


def test_no_pyplot_state():
    route_chart_png(series(), MARKERS)
    assert "matplotlib.pyplot" not in sys.modules
