"""The demo's LLM application, built on our own SDK: it keeps calling each route at its rate (in
demo time), asks `Controls.guard()` before every call and reports each attempt with `track()`.

It obeys the controls as a real app would: a killed route answers its fallback without calling
the model (no event), a clamp caps tokens_out (and the time spent generating them, which is most of a call's), a model or
provider switch gives that model's / provider's behaviour (the latency spike belongs to the model
the scenario switched to, the 429s to the rate-limited provider), a retry cap cuts attempts (and,
as a retry storm feeds a rate limit, the share of 429s).
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from llm_incident_client import Controls, Decision, EventLogger
from llm_incident.demo.traffic import (BAD_MODEL, PROFILES, RATE_LIMITED_PROVIDER, ROUTES,
                                       SCENARIO_ROUTE, RouteProfile, healthy_call, misbehave)

DEFAULT_RETRIES = 2  # the app's own retries when the controls set no cap
RATE_LIMITED_SHARE = 0.33
# Relative latency of the models the demo knows (a switch changes the route's durations).
MODEL_LATENCY = {"gpt-4o-mini": 1.0, "gpt-4o": 1.8, "claude-3-5-haiku-latest": 1.0,
                 BAD_MODEL: 3.2}


def rate_limited_share(retries: int) -> float:
    """The share of attempts the rate-limited provider refuses: a retry storm feeds it, so it
    grows with the retries the app makes (a third with the app's own 2, a ninth with none)."""
    return RATE_LIMITED_SHARE * (1 + min(retries, DEFAULT_RETRIES)) / (1 + DEFAULT_RETRIES)


@dataclass
class AppStats:
    """What the simulated app did: attempts sent to a model, and answers from a fallback."""

    calls: int = 0
    fallbacks: int = 0
    clamped: int = 0


class SimulatedApp:
    """Call the routes in demo time from a thread; `step(now)` does the calls due up to `now`."""

    def __init__(self, scenario: str, clock: Callable[[], datetime], *, url: str, api_key: str,
                 seed: int = 11, tick_seconds: float = 0.2,
                 logger: EventLogger | None = None, controls: Controls | None = None) -> None:
        self.scenario, self.clock, self.tick = scenario, clock, tick_seconds
        self.rng = random.Random(seed)
        self.logger = logger or EventLogger(url, api_key, flush_interval=0.25)
        self.controls = controls or Controls(url, api_key, start=False, wait=10)
        self.stats = AppStats()
        self._numbers = itertools.count(1)
        now = clock()
        self._next = {p.route: now + self._gap(p) for p in ROUTES}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start calling (it may start before the server listens: the SDK retries, and routes
        not fetched yet fail open, as in a real app)."""
        self.controls.start()
        self._thread = threading.Thread(target=self._run, name="llm-incident-demo-app", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.logger.close(timeout=2)
        self.controls.close()

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            self.step(self.clock())

    def _gap(self, p: RouteProfile) -> timedelta:
        return timedelta(seconds=self.rng.expovariate(p.calls_per_min / 60))

    def step(self, now: datetime) -> int:
        """Make every call due by `now` (each route's arrivals are Poisson); how many requests."""
        requests = 0
        for route, due in sorted(self._next.items()):
            while due <= now:
                self.request(PROFILES[route], due)
                requests += 1
                due += self._gap(PROFILES[route])
            self._next[route] = due
        return requests

    def request(self, p: RouteProfile, ts: datetime) -> None:
        """One user request to route `p` at `ts`: the controls decide, then the model is called
        (with retries on a 429) and every attempt is reported."""
        decision = self.controls.guard(p.route)
        if not decision.allowed:
            self.stats.fallbacks += 1
            return
        retries = DEFAULT_RETRIES if decision.retry_cap is None else decision.retry_cap
        n = next(self._numbers)
        for attempt in range(1, retries + 2):
            event = self.attempt(p, ts, n, attempt, decision)
            self._report(event)
            if event["status"] != "error":
                return
            ts += timedelta(milliseconds=event["duration_ms"] + 200 * attempt)

    def attempt(self, p: RouteProfile, ts: datetime, n: int, attempt: int,
                decision: Decision) -> dict[str, Any]:
        """The event of one attempt, as the scenario and the controls make it."""
        retries = DEFAULT_RETRIES if decision.retry_cap is None else decision.retry_cap
        event = healthy_call(self.rng, p, ts, n)
        event["event_id"] = f"demo-live-{p.route}-{n:07d}-{attempt}"
        event["attempt"] = attempt
        broken = p.route == SCENARIO_ROUTE[self.scenario]
        default_model = BAD_MODEL if broken and self.scenario == "latency-spike" else p.model
        model = decision.model or default_model
        provider = decision.provider or p.provider
        event["model"], event["provider"] = model, provider
        if broken and self.scenario in ("token-explosion", "quality-regression"):
            misbehave(self.rng, self.scenario, event)  # the bad prompt: no control changes it
        elif broken and self.scenario == "latency-spike" and model == BAD_MODEL:
            misbehave(self.rng, self.scenario, event)
        else:
            event["duration_ms"] = round(event["duration_ms"] * MODEL_LATENCY.get(model, 1.0)
                                         / MODEL_LATENCY.get(p.model, 1.0), 1)
        if (broken and self.scenario == "provider-429" and provider == RATE_LIMITED_PROVIDER
                and self.rng.random() < rate_limited_share(retries)):
            event.update(status="error", error_code="429", tokens_out=0,
                         duration_ms=round(self.rng.uniform(80, 300), 1))
        if decision.max_tokens is not None and event["tokens_out"] > decision.max_tokens:
            share = decision.max_tokens / event["tokens_out"]
            event["tokens_out"] = decision.max_tokens
            event["duration_ms"] = round(event["duration_ms"] * share, 1)
            self.stats.clamped += 1
        return event

    def _report(self, event: dict[str, Any]) -> None:
        fields = {k: v for k, v in event.items() if k != "route"}
        with self.logger.track(event["route"]) as call:
            for name, value in fields.items():
                setattr(call, name, value)  # the demo's own time and durations, not the wall's
        self.stats.calls += 1
