"""The chart's data, on both backends: buckets split at the incident's marks (an event after the start
is drawn after the start line), percent ticks that tell values apart, one label per close group
of marks. Reads `chart_layout`, which `route_chart_png` draws."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from llm_incident.charts import route_chart_png
from llm_incident.events.ingest import ingest_events
from llm_incident.incidents.postmortem import chart_layout, chart_series
from llm_incident.incidents.postmortem_chart import axis
from llm_incident.incidents.postmortem_model import Marker

START = datetime(2026, 11, 26, 21, 0, 31, tzinfo=timezone.utc)  # not on a minute
ROUTE = "docs.answer"


def seed(db) -> None:
    """An hour of quiet baseline (1 in 1,000 flagged), then 60 flagged calls 8 s after the start."""
    events = [{"event_id": f"b{i}", "route": ROUTE, "tokens_out": 300, "duration_ms": 800.0,
               "status": "flagged" if i == 500 else "ok",
               "ts": (START - timedelta(hours=1) + timedelta(seconds=3.6 * i)).isoformat()}
              for i in range(1000)]
    events += [{"event_id": f"f{i}", "route": ROUTE, "tokens_out": 320, "duration_ms": 850.0,
                "status": "flagged", "ts": (START + timedelta(seconds=8)).isoformat()}
               for i in range(60)]
    with db.write() as session:
        ingest_events(session, events, now=START + timedelta(hours=1))


MARKERS = [Marker(START, "start", "start"),
           Marker(START + timedelta(minutes=12, seconds=5), "max_tokens=800", "mitigation"),
           Marker(START + timedelta(minutes=12, seconds=40), "retry_cap=1", "mitigation"),
           Marker(START + timedelta(minutes=30), "close", "close")]


def layout_of(db):
    window = (START - timedelta(minutes=30), START + timedelta(minutes=30))
    with db.read() as session:
        series = chart_series(session, ROUTE, *window, marks=[m.ts for m in MARKERS])
    return series, chart_layout(series, MARKERS)


def test_events_after_the_start_are_drawn_after_the_start_line(db):
    seed(db)
    series, layout = layout_of(db)
    start_line = next(m.ts for m in layout.lines if m.kind == "start")
    flagged = layout.panels[2]
    hot = [(x, v) for x, v in zip(layout.xs, flagged.values, strict=True) if v and v > 50]
    assert hot and all(x > start_line for x, _ in hot)
    # no bucket straddles a mark; the one after the start holds all 60 flagged calls
    for point in series.points:
        assert not any(point.ts < m.ts.replace(microsecond=0) < point.end for m in MARKERS)
    (first,) = [p for p in series.points if p.ts == START]
    assert first.calls >= 60 and first.flagged_rate > 0.9
    before = [p for p in series.points if p.end <= START]
    assert before and all((p.flagged_rate or 0) < 0.1 for p in before)


def test_percent_ticks_tell_values_apart_and_close_marks_share_a_label(db):
    seed(db)
    _, layout = layout_of(db)
    for panel in layout.panels:
        assert len(set(panel.tick_labels)) == len(panel.tick_labels), panel.tick_labels
        assert panel.ylim[1] >= max(v for v in panel.values if v is not None)
    assert layout.panels[2].tick_labels == ["0%", "20%", "40%", "60%", "80%", "100%"]
    save(route_chart_png(layout_of(db)[0], MARKERS), "flagged-after-start.png")
    labels = [(label.text, label.marks) for label in layout.labels]
    assert labels == [("start", 1), ("max_tokens=800 · retry_cap=1", 2), ("close", 1)]
    gap = (layout.end - layout.start) * 0.02
    xs = [label.ts for label in layout.labels]
    assert all(b - a >= gap for a, b in zip(xs, xs[1:], strict=False))


def test_a_low_flagged_rate_gets_its_own_decimals(db):
    """The issue's axis read "0.1%, 0.0%, 0.0%, 0.0%": ticks now step by what they can show."""
    assert axis([0.1, 0.05, None, 0.0], percent=True)[2] == [
        "0.0%", "0.2%", "0.4%", "0.6%", "0.8%", "1.0%"]
    assert axis([3.4, 0.0], percent=True)[2] == ["0%", "1%", "2%", "3%", "4%"]
    assert axis([12.5], percent=True)[2] == ["0%", "5%", "10%", "15%"]
    assert axis([100.0], percent=True)[2] == ["0%", "20%", "40%", "60%", "80%", "100%"]
    assert axis([2873.0, 364.0], percent=False)[2] == ["0", "1,000", "2,000", "3,000", "4,000"]
    with db.write() as session:
        ingest_events(session, [{"event_id": f"q{i}", "route": ROUTE, "tokens_out": 300,
                                 "status": "ok", "ts": (START - timedelta(minutes=30) + timedelta(
                                     seconds=1.8 * i)).isoformat()} for i in range(2000)],
                      now=START + timedelta(hours=1))
    series, layout = layout_of(db)
    assert layout.panels[2].tick_labels == ["0.0%", "0.2%", "0.4%", "0.6%", "0.8%", "1.0%"]
    save(route_chart_png(series, MARKERS), "no-flags.png")


def save(png: bytes, name: str) -> None:
    """LLM_INCIDENT_CHART_DIR=dir keeps the PNG to look at."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    if os.environ.get("LLM_INCIDENT_CHART_DIR"):
        Path(os.environ["LLM_INCIDENT_CHART_DIR"], name).write_bytes(png)
