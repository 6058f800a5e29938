"""Seed `llm-incident demo`'s database: ~3 hours of calls on a few routes, the scenario's route
misbehaving for its last `INCIDENT_MINUTES`, and the change that caused it."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from llm_incident.changes import ChangeIn, ChangeKind, record_change
from llm_incident.demo.traffic import (BAD_MODEL, BAD_PROMPT_VERSION, ROUTES, SCENARIO_ROUTE,
                                       SCENARIOS, healthy_call, misbehave)
from llm_incident.events.ingest import ingest_events

# The scenario began this long before the demo's now (its change is at that minute).
INCIDENT_MINUTES = 27


def synthetic_events(
    scenario: str, *, now: datetime, hours: float = 3.0, incident_minutes: int = INCIDENT_MINUTES,
    seed: int = 7
) -> list[dict[str, Any]]:
    """Events for every route over `hours` up to `now`; the scenario's route misbehaves lately."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    rng = random.Random(seed)
    start = now - timedelta(hours=hours)
    incident_start = now - timedelta(minutes=incident_minutes)
    events: list[dict[str, Any]] = []
    for p in ROUTES:
        ts, n = start, 0
        while True:
            ts += timedelta(seconds=rng.expovariate(p.calls_per_min / 60))
            if ts >= now:
                break
            n += 1
            event = healthy_call(rng, p, ts, n)
            if p.route == SCENARIO_ROUTE[scenario] and ts >= incident_start:
                misbehave(rng, scenario, event)
            events.append(event)
    return events


def seed_demo(session: Session, scenario: str, *, now: datetime) -> int:
    """Store the demo traffic and the change that 'caused' it; returns how many events."""
    events = synthetic_events(scenario, now=now)
    for i in range(0, len(events), 2000):
        ingest_events(session, events[i : i + 2000], now=now)
    route = SCENARIO_ROUTE[scenario]
    kind = ChangeKind.model if scenario == "latency-spike" else ChangeKind.prompt
    ref = BAD_MODEL if kind is ChangeKind.model else f"{route}.main v{BAD_PROMPT_VERSION}"
    record_change(
        session,
        ChangeIn(route=route, kind=kind, description=f"demo: {SCENARIOS[scenario]}",
                 ref=ref, ts=now - timedelta(minutes=INCIDENT_MINUTES)),
        now=now,
    )
    record_change(
        session,
        ChangeIn(route="billing.explain", kind=ChangeKind.deploy, description="demo: routine deploy",
                 ref="v1.8.2", ts=now - timedelta(hours=2)),
        now=now,
    )
    return len(events)
