"""The token bucket and per-key long-poll counts, on a fake clock; the documented defaults."""

from __future__ import annotations

import pytest

from llm_incident.api.limits import KeyLimits, TokenBucket
from llm_incident.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_the_rate():
    clock = Clock()
    bucket = TokenBucket(2.0, 3, clock)
    assert [bucket.take() for _ in range(3)] == [0, 0, 0]
    assert bucket.take() == pytest.approx(0.5)  # one token every 1/rate seconds
    clock.now += 0.25
    assert bucket.take() == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.take() == 0
    clock.now += 60
    assert [bucket.take() for _ in range(4)][:3] == [0, 0, 0]  # refills to the burst, no further


def test_buckets_are_per_key():
    limits = KeyLimits(1.0, 1, 10, Clock())
    assert limits.ingest_wait("a") == 0
    assert limits.ingest_wait("a") > 0
    assert limits.ingest_wait("b") == 0


def test_long_poll_slots_are_counted_per_key_and_released():
    limits = KeyLimits(1.0, 1, 2, Clock())
    assert limits.open_poll("a") and limits.open_poll("a")
    assert not limits.open_poll("a")
    assert limits.open_poll("b")
    limits.close_poll("a")
    assert limits.polls("a") == 1 and limits.open_poll("a")
    for _ in range(2):
        limits.close_poll("a")
    assert limits.polls("a") == 0


def test_documented_defaults(monkeypatch):
    for name in ("LLM_INCIDENT_INGEST_RATE", "LLM_INCIDENT_INGEST_BURST", "LLM_INCIDENT_MAX_LONG_POLLS_PER_KEY",
                 "LLM_INCIDENT_HEADER_TIMEOUT_SECONDS", "LLM_INCIDENT_BODY_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert (settings.ingest_rate, settings.ingest_burst, settings.max_long_polls_per_key) == (1000, 5000, 1000)
    assert (settings.header_timeout_seconds, settings.body_timeout_seconds) == (10, 60)
    monkeypatch.setenv("LLM_INCIDENT_INGEST_RATE", "2.5")
    assert Settings(_env_file=None).ingest_rate == 2.5
