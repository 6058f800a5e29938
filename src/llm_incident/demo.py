"""Synthetic traffic for `llm-incident demo`: ~3 hours of calls on a few routes, with a live incident."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from llm_incident.changes import ChangeIn, ChangeKind, record_change
from llm_incident.events.ingest import ingest_events


@dataclass(frozen=True)
class RouteProfile:
    route: str
    model: str
    provider: str
    calls_per_min: float
    tokens_in: int
    tokens_out: int
    duration_ms: float


ROUTES = (
    RouteProfile("support.reply", "gpt-4o-mini", "openai", 12, 1800, 350, 1400),
    RouteProfile("search.summarize", "claude-3-5-haiku-latest", "anthropic", 8, 3200, 260, 1900),
    RouteProfile("docs.answer", "gpt-4o", "openai", 4, 2600, 420, 2600),
    RouteProfile("billing.explain", "gpt-4o-mini", "openai", 2, 900, 180, 900),
)

SCENARIOS = {
    "token-explosion": "support.reply emits ~8x more output tokens since a prompt change",
    "latency-spike": "search.summarize p95 latency triples after a model switch",
    "provider-429": "openai answers 429 for a third of docs.answer calls; clients retry",
    "quality-regression": "support.reply flagged rate jumps to ~18% after a prompt change",
}
SCENARIO_ROUTE = {
    "token-explosion": "support.reply",
    "latency-spike": "search.summarize",
    "provider-429": "docs.answer",
    "quality-regression": "support.reply",
}
TIERS = ("free", "pro", "enterprise")
REGIONS = ("us-east-1", "eu-west-1")


def _call(rng: random.Random, p: RouteProfile, ts: datetime, n: int) -> dict[str, Any]:
    return {
        "event_id": f"demo-{p.route}-{n:06d}",
        "ts": ts.isoformat(),
        "route": p.route,
        "model": p.model,
        "provider": p.provider,
        "region": rng.choice(REGIONS),
        "customer_tier": rng.choices(TIERS, weights=(6, 3, 1))[0],
        "tokens_in": max(1, int(rng.gauss(p.tokens_in, p.tokens_in * 0.2))),
        "tokens_out": max(1, int(rng.lognormvariate(0, 0.35) * p.tokens_out)),
        "duration_ms": round(rng.lognormvariate(0, 0.3) * p.duration_ms, 1),
        "status": "flagged" if rng.random() < 0.015 else "ok",
        "prompt_id": f"{p.route}.main",
        "prompt_version": "41",
        "attempt": 1,
        "output_excerpt": f"Sample answer #{n} for {p.route}.",
    }


def _apply_scenario(rng: random.Random, scenario: str, event: dict[str, Any]) -> None:
    if scenario == "token-explosion":
        event["tokens_out"] *= rng.randint(6, 10)
        event["duration_ms"] = round(event["duration_ms"] * 3.5, 1)
        event["prompt_version"] = "42"
    elif scenario == "latency-spike":
        event["duration_ms"] = round(event["duration_ms"] * rng.uniform(2.5, 4), 1)
        event["model"] = "claude-sonnet-4-5"
    elif scenario == "provider-429":
        if rng.random() < 0.33:
            event.update(status="error", error_code="429", tokens_out=0,
                         attempt=rng.randint(1, 3), duration_ms=round(rng.uniform(80, 300), 1))
    elif scenario == "quality-regression":
        event["prompt_version"] = "42"
        if rng.random() < 0.18:
            event["status"] = "flagged"
            event["contains_banned"] = rng.random() < 0.5
            event["output_excerpt"] = "As an internal note: the system prompt says…"


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
            event = _call(rng, p, ts, n)
            if p.route == SCENARIO_ROUTE[scenario] and ts >= incident_start:
                _apply_scenario(rng, scenario, event)
            events.append(event)
    return events


def seed_demo(session: Session, scenario: str, *, now: datetime) -> int:
    """Store the demo traffic and the change that 'caused' it; returns how many events."""
    events = synthetic_events(scenario, now=now)
    for i in range(0, len(events), 2000):
        ingest_events(session, events[i : i + 2000], now=now)
    route = SCENARIO_ROUTE[scenario]
    kind = ChangeKind.model if scenario == "latency-spike" else ChangeKind.prompt
    ref = "demo" if kind is ChangeKind.model else f"{route}.main v42"
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
