"""The demo's routes and scenarios: what one call of each route looks like, healthy or not."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any


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
PROFILES = {p.route: p for p in ROUTES}

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
BAD_MODEL = "claude-sonnet-4-5"  # the latency-spike scenario's switch
BAD_PROMPT_VERSION = "42"
GOOD_PROMPT_VERSION = "41"
RATE_LIMITED_PROVIDER = "openai"  # the provider-429 scenario's
TIERS = ("free", "pro", "enterprise")
REGIONS = ("us-east-1", "eu-west-1")


def healthy_call(rng: random.Random, p: RouteProfile, ts: datetime, n: int) -> dict[str, Any]:
    """One call of route `p` on a good day."""
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
        "prompt_version": GOOD_PROMPT_VERSION,
        "attempt": 1,
        "output_excerpt": f"Sample answer #{n} for {p.route}.",
    }


def misbehave(rng: random.Random, scenario: str, event: dict[str, Any]) -> None:
    """Turn a healthy call of the scenario's route into one of the incident's."""
    if scenario == "token-explosion":
        event["tokens_out"] *= rng.randint(6, 10)
        event["duration_ms"] = round(event["duration_ms"] * 3.5, 1)
        event["prompt_version"] = BAD_PROMPT_VERSION
    elif scenario == "latency-spike":
        event["duration_ms"] = round(event["duration_ms"] * rng.uniform(2.5, 4), 1)
        event["model"] = BAD_MODEL
    elif scenario == "provider-429":
        if rng.random() < 0.33:
            event.update(status="error", error_code="429", tokens_out=0,
                         attempt=rng.randint(1, 3), duration_ms=round(rng.uniform(80, 300), 1))
    elif scenario == "quality-regression":
        event["prompt_version"] = BAD_PROMPT_VERSION
        if rng.random() < 0.18:
            event["status"] = "flagged"
            event["contains_banned"] = rng.random() < 0.5
            event["output_excerpt"] = "As an internal note: the system prompt says…"
