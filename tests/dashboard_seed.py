"""A small world for the dashboard tests: two routes of traffic (one regressing in the last hour),
a deploy, a kill switch, an incident with labelled evidence, and `NOW` to serve it at."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from llm_incident.changes import ChangeIn, ChangeKind, record_change
from llm_incident.controls.service import change_controls
from llm_incident.db import Database
from llm_incident.events.ingest import ingest_events
from llm_incident.evidence.service import attach
from llm_incident.incidents.models import IncidentClass
from llm_incident.incidents.service import StartRequest, start_incident

NOW = datetime(2026, 11, 26, 14, 0, 30, tzinfo=timezone.utc)
REGRESSING, STEADY, QUIET = "support.reply", "search.summarize", "billing.explain"
SYMPTOM = "answers <b>cut off</b> & flagged"


def _event(i: int, route: str, minutes_ago: float, *, flagged: bool, tokens_out: int,
           duration_ms: float) -> dict:
    return {"event_id": f"{route}-{i}", "route": route,
            "ts": (NOW - timedelta(minutes=minutes_ago)).isoformat(), "model": "gpt-4o-mini",
            "provider": "openai", "env": "prod", "tokens_in": 100, "tokens_out": tokens_out,
            "duration_ms": duration_ms, "status": "flagged" if flagged else "ok",
            "prompt_id": "reply-v2" if route == REGRESSING else "sum-v1",
            "output_excerpt": f"{'refund policy' if flagged else 'fine'} answer {i}"}


def seed(db: Database) -> None:
    """Two hours of traffic on two routes, a route quiet for days, a deploy, a kill, an incident."""
    events = []
    for i in range(120):  # one call a minute per route for two hours
        recent = i < 60
        events.append(_event(i, REGRESSING, i + 0.5, flagged=recent and i % 4 == 0,
                             tokens_out=900 + i if recent else 300 + i,
                             duration_ms=1200.0 + i if recent else 700.0 + i))
        events.append(_event(i, STEADY, i + 0.25, flagged=i % 10 == 0, tokens_out=200 + i,
                             duration_ms=400.0 + i))
    events.append(_event(0, QUIET, 3 * 24 * 60, flagged=False, tokens_out=10, duration_ms=10.0))
    with db.write() as session:
        assert ingest_events(session, events, now=NOW).accepted == len(events)
        record_change(session, ChangeIn(route=REGRESSING, kind=ChangeKind.deploy,
                                        description="deploy 4.2: longer answers",
                                        ts=NOW - timedelta(minutes=61)), now=NOW)
        incident, _ = start_incident(session, StartRequest(
            commander="U1", symptom=SYMPTOM, incident_class=IncidentClass.quality,
            routes=(REGRESSING,), envs=("prod",)), now=NOW - timedelta(minutes=20))
        attach(session, incident, [f"{REGRESSING}-0"], label="bad", note="cut off mid-sentence",
               actor="U1", now=NOW - timedelta(minutes=15))
        attach(session, incident, [f"{REGRESSING}-1"], label="good", actor="U1",
               now=NOW - timedelta(minutes=14))
        change_controls(session, REGRESSING, "prod", {"max_tokens": 512}, actor="U1",
                        reason="clamp while we look", incident=incident.number,
                        now=NOW - timedelta(minutes=10))
