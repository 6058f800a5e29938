"""The triage's one read of the route's calls around the onset (triage/frame.py) gives the same report
as the queries it replaces, on SQLite and PostgreSQL, for every generated scenario kind."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from llm_incident.triage import attribution, report
from llm_incident.triage.frame import DIMENSIONS, read_frame
from llm_incident.triage.times import moment
from tests.triage_db import seeded
from tests.triage_scenarios import KINDS, STEP_KINDS

# Sums in another order (numpy vs SQL), and SQLite's 15-digit text of a REAL, move the last digits.
REL = 1e-9


def _same(a, b, path=""):
    """Equal, floats within REL; returns the first difference (or None)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{path}: keys {set(a) ^ set(b)}"
        return next((d for k in a if (d := _same(a[k], b[k], f"{path}/{k}"))), None)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} items"
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := _same(x, y, f"{path}[{i}]"))),
                    None)
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return None if math.isclose(a, b, rel_tol=REL, abs_tol=1e-15) else f"{path}: {a} vs {b}"
    return None if a == b else f"{path}: {a!r} vs {b!r}"


def _queried(monkeypatch):
    """The report without the shared read: every part queries the database itself."""
    monkeypatch.setattr(report, "read_frame_for", lambda *args, **kwargs: None)
    monkeypatch.setattr(attribution, "_series_percentile", lambda *args, **kwargs: (False, None))


@pytest.mark.parametrize("kind", KINDS)
def test_the_shared_read_gives_the_report_the_queries_give(db, monkeypatch, kind):
    scenario, _ = seeded(db, kind)
    runs = [dict(now=scenario.now, incident_class=scenario.truth.incident_class),
            dict(now=scenario.now + timedelta(seconds=37), incident_class=None,
                 since=scenario.now - timedelta(minutes=25, seconds=13))]
    with db.read() as session:
        shared = [report.triage(session, scenario.route, **run).to_dict() for run in runs]
        with monkeypatch.context() as patch:
            _queried(patch)
            queried = [report.triage(session, scenario.route, **run).to_dict() for run in runs]
    for found, expected in zip(shared, queried, strict=True):
        assert _same(found, expected) is None
    assert shared[1]["blast_radius"]["values"]  # `since`: an onset, so the parts ran
    if kind in STEP_KINDS:
        assert shared[0]["attributions"] and shared[0]["blast_radius"]["values"]


def test_the_frame_holds_every_call_of_its_window_exactly(db):
    scenario, _ = seeded(db, "token_explosion", rate=5)
    onset = scenario.truth.onset
    start, end = onset - timedelta(minutes=30, seconds=0.5), onset + timedelta(minutes=20)
    with db.read() as session:
        frame = read_frame(session, scenario.route, start, end)
    inside = sorted((e for e in scenario.events if start <= e["ts"] < end),
                    key=lambda e: e["ts"])
    assert [moment(us) for us in frame.us] == [e["ts"] for e in inside]
    values = [tuple(e[d] for d in DIMENSIONS) for e in inside]
    assert [frame.combos[c] for c in frame.combo] == values
    assert all(math.isnan(x) if e["tokens_out"] is None else x == e["tokens_out"]
               for x, e in zip(frame.values["tokens_out"].tolist(), inside, strict=True))
    after = frame.between(onset, end)
    assert after.stop - after.start == sum(1 for e in inside if e["ts"] >= onset)
