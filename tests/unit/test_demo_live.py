"""The demo's simulated app obeys the controls as a real app would, and keeps demo time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from statistics import median

import pytest

from llm_incident_client import Decision
from llm_incident_client.tracking import Tracker
from llm_incident.demo.clock import DemoClock
from llm_incident.demo.live import SimulatedApp
from llm_incident.demo.traffic import BAD_MODEL

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


class Sink:
    """An EventLogger stand-in: `track()` is the SDK's own Tracker, events land in a list."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def log(self, event):
        self.events.append(dict(event))
        return event.get("event_id")

    def track(self, route: str, **fields):
        return Tracker(lambda: self, route, **fields)

    def close(self, timeout=None):
        return True


class FixedControls:
    def __init__(self, **decisions: Decision) -> None:
        self.decisions = decisions

    def guard(self, route: str) -> Decision:
        return self.decisions.get(route.replace(".", "_"), Decision())

    def start(self) -> None: ...

    def close(self) -> None: ...


def run(scenario: str, minutes: int = 60, **decisions: Decision) -> tuple[list[dict], SimulatedApp]:
    sink = Sink()
    app = SimulatedApp(scenario, lambda: T0, url="http://x", api_key="k", logger=sink,
                       controls=FixedControls(**decisions), seed=3)
    app.step(T0 + timedelta(minutes=minutes))
    return sink.events, app


def of(events: list[dict], route: str) -> list[dict]:
    return [e for e in events if e["route"] == route]


def test_calls_come_at_each_routes_rate_in_demo_time_with_the_demo_timestamps():
    events, _ = run("token-explosion", minutes=60)
    assert 600 <= len(of(events, "support.reply")) <= 840  # 12 calls/min
    assert 180 <= len(of(events, "docs.answer")) <= 300  # 4 calls/min
    stamps = sorted(e["ts"] for e in events)
    assert stamps[0] >= T0.isoformat() and stamps[-1] <= (T0 + timedelta(minutes=60)).isoformat()
    assert len({e["event_id"] for e in events}) == len(events)


def test_a_kill_answers_the_fallback_and_sends_no_call():
    events, app = run("quality-regression", support_reply=Decision(allowed=False))
    assert of(events, "support.reply") == [] and app.stats.fallbacks > 600
    assert of(events, "docs.answer")  # the other routes go on


def test_a_clamp_caps_tokens_out_and_the_time_spent_on_them():
    free, _ = run("token-explosion")
    capped, app = run("token-explosion", support_reply=Decision(max_tokens=800))
    assert max(e["tokens_out"] for e in of(capped, "support.reply")) == 800
    assert app.stats.clamped > 0
    slow = median(e["duration_ms"] for e in of(free, "support.reply"))
    assert median(e["duration_ms"] for e in of(capped, "support.reply")) < slow / 2


def test_switching_away_from_the_scenarios_model_ends_the_latency_spike():
    spiking, _ = run("latency-spike")
    switched, _ = run("latency-spike", search_summarize=Decision(model="claude-3-5-haiku-latest"))
    assert {e["model"] for e in of(spiking, "search.summarize")} == {BAD_MODEL}
    assert {e["model"] for e in of(switched, "search.summarize")} == {"claude-3-5-haiku-latest"}
    assert (median(e["duration_ms"] for e in of(switched, "search.summarize"))
            < median(e["duration_ms"] for e in of(spiking, "search.summarize")) / 2)


def test_429s_come_from_the_rate_limited_provider_and_retries_follow_the_cap():
    storm, _ = run("provider-429")
    errors = [e for e in of(storm, "docs.answer") if e["status"] == "error"]
    assert errors and all(e["error_code"] == "429" for e in errors)
    assert max(e["attempt"] for e in of(storm, "docs.answer")) == 3  # the app's 2 retries
    capped, _ = run("provider-429", docs_answer=Decision(retry_cap=0))
    assert {e["attempt"] for e in of(capped, "docs.answer")} == {1}
    moved, _ = run("provider-429", docs_answer=Decision(provider="anthropic"))
    assert not [e for e in of(moved, "docs.answer") if e["status"] == "error"]
    assert {e["provider"] for e in of(moved, "docs.answer")} == {"anthropic"}


def test_the_demo_clock_runs_speed_times_as_fast():
    wall = [100.0]
    clock = DemoClock(T0, speed=30, monotonic=lambda: wall[0])
    assert clock() == T0
    wall[0] += 2
    assert clock() == T0 + timedelta(seconds=60)
    assert clock.real_seconds(300) == 10
    with pytest.raises(ValueError):
        DemoClock(T0, speed=0.5)


def test_a_retry_cap_calms_the_retry_storm():
    share = {}
    for cap in (None, 0):
        events, _ = run("provider-429", minutes=240,
                        docs_answer=Decision(retry_cap=cap))
        attempts = of(events, "docs.answer")
        share[cap] = sum(e["status"] == "error" for e in attempts) / len(attempts)
    assert 0.25 < share[None] < 0.41 and share[0] < share[None] / 2
