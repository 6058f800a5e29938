"""The SDK event logger against the real running server, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

import llm_incident_client as client
from llm_incident_client import EventLogger
from llm_incident.events.models import Event
from tests.support import TEST_KEY, free_port, live_server

FAST = {"flush_interval": 0.02, "max_retry_backoff": 0.1, "timeout": 5}


def rows(db) -> list[Event]:
    with db.read() as session:
        return list(session.exec(select(Event).order_by(Event.id)))


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class ProviderError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"provider answered {status_code}")
        self.status_code = status_code


def test_logged_events_are_stored(server, db):
    with EventLogger(server, TEST_KEY, **FAST) as logger:
        ids = [logger.log({"route": "support.reply", "model": "gpt-4o-mini", "provider": "openai",
                           "tokens_in": 1000, "tokens_out": 200, "duration_ms": 850.0,
                           "metadata": {"n": i}}) for i in range(3)]
        assert logger.flush(10) is True
        assert (logger.stats.sent, logger.stats.queued) == (3, 0)
    stored = rows(db)
    assert [r.event_id for r in stored] == ids
    assert [r.meta for r in stored] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(r.cost_usd is not None and r.cost_usd > 0 for r in stored)


def test_track_as_context_manager_and_decorator_including_exceptions(server, db):
    logger = EventLogger(server, TEST_KEY, **FAST)
    started = datetime.now(timezone.utc)
    with logger.track(route="support.reply", model="gpt-4o", provider="openai", env="staging") as call:
        call.tokens_in, call.tokens_out = 120, 30
        call.prompt_id, call.prompt_version, call.attempt = "reply", "v7", 2
        call.contains_banned = True
        call.metadata["ticket"] = "T-1"
        call.input_excerpt = "mail me at ana@example.com"
        time.sleep(0.02)

    @logger.track(route="search.summarize", model="gpt-4o-mini")
    def summarize(text: str) -> str:
        client.current_call().tokens_out = len(text)
        return text.upper()

    @logger.track(route="search.summarize")
    def rate_limited() -> None:
        raise ProviderError(429)

    assert summarize("abc") == "ABC"
    with pytest.raises(ProviderError) as raised:
        rate_limited()
    assert raised.value.status_code == 429
    with pytest.raises(TimeoutError):
        with logger.track(route="support.reply"):
            raise TimeoutError("model took too long")
    assert logger.close(10) is True

    first, ok, limited, timed_out = rows(db)
    assert first.event_id == call.event_id
    assert (first.route, first.env, first.model, first.provider) == ("support.reply", "staging", "gpt-4o",
                                                                     "openai")
    assert (first.tokens_in, first.tokens_out, first.status, first.attempt) == (120, 30, "ok", 2)
    assert (first.prompt_id, first.prompt_version, first.contains_banned) == ("reply", "v7", True)
    assert first.meta == {"ticket": "T-1"} and "ana@example.com" not in first.input_excerpt
    assert first.duration_ms >= 20
    assert started - timedelta(seconds=1) <= first.ts <= started + timedelta(seconds=5)
    assert (ok.route, ok.tokens_out, ok.status, ok.error_code) == ("search.summarize", 3, "ok", None)
    assert (limited.status, limited.error_code) == ("error", "429")
    assert (timed_out.status, timed_out.error_code) == ("error", "TimeoutError")


def test_module_level_track_sends_to_the_configured_logger(server, db):
    @client.track(route="support.reply", model="gpt-4o-mini")
    def reply() -> str:
        return "hello"

    client.configure(server, TEST_KEY, **FAST)
    try:
        assert reply() == "hello"
    finally:
        assert client.shutdown(10) is True
    assert [(r.route, r.model, r.status) for r in rows(db)] == [("support.reply", "gpt-4o-mini", "ok")]


def test_server_down_for_a_while_then_everything_arrives_once(app, db):
    port = free_port()
    logger = EventLogger(f"http://127.0.0.1:{port}", TEST_KEY, batch_size=4, **FAST)
    ids = [logger.log({"route": "support.reply", "tokens_out": i}) for i in range(10)]
    with pytest.raises(ProviderError):
        with logger.track(route="support.reply") as call:  # the app keeps working and raising its own errors
            raise ProviderError(503)
    ids.append(call.event_id)
    wait_for(lambda: logger.stats.retries >= 3)
    assert logger.flush(0.2) is False
    assert (logger.stats.sent, logger.stats.queued, logger.stats.dropped) == (0, 11, 0)

    with live_server(app, port=port):
        assert logger.flush(15) is True
        assert logger.close(5) is True
    stored = rows(db)
    assert sorted(r.event_id for r in stored) == sorted(ids)
    stats = logger.stats
    assert (stats.sent, stats.duplicates, stats.rejected, stats.dropped, stats.queued) == (11, 0, 0, 0, 0)


def test_queue_bound_while_down_keeps_the_first_events_and_counts_the_rest(app, db):
    port = free_port()
    logger = EventLogger(f"http://127.0.0.1:{port}", TEST_KEY, max_queue=5, **FAST)
    ids = [logger.log({"route": "r", "tokens_out": i}) for i in range(8)]
    assert ids[5:] == [None, None, None]
    assert logger.stats.dropped == 3
    with live_server(app, port=port):
        assert logger.close(15) is True
    assert [r.event_id for r in rows(db)] == ids[:5]


def test_rejections_are_counted_and_good_events_still_arrive(server, db, caplog):
    logger = EventLogger(server, TEST_KEY, **FAST)
    good = logger.log({"route": "r"})
    bad = logger.log({"route": "r", "tokens_out": -5})
    naive = logger.log({"route": "r", "ts": datetime(2026, 1, 1, 12, 0)})
    assert logger.log(None) is None and logger.log("route=r") is None  # type: ignore[arg-type]
    assert logger.log({"route": "r", "tokens_in": float("nan")})  # queued; refused when encoded
    assert logger.close(10) is True
    assert [r.event_id for r in rows(db)] == [good]
    stats = logger.stats
    assert (stats.sent, stats.rejected, stats.invalid) == (1, 2, 3)
    assert f"event {bad} rejected by the server: tokens_out" in caplog.text
    assert f"event {naive} rejected by the server: ts" in caplog.text

    wrong_key = EventLogger(server, "not-a-key", **FAST)
    wrong_key.log({"route": "r"})
    wrong_key.log({"route": "r"})
    assert wrong_key.close(10) is True
    assert (wrong_key.stats.rejected, wrong_key.stats.retries) == (2, 0)
    assert "rejected with HTTP 401 (not retried)" in caplog.text
    assert len(rows(db)) == 1


def test_pending_events_are_flushed_at_interpreter_exit(server, db):
    script = textwrap.dedent(f"""
        from llm_incident_client import EventLogger
        logger = EventLogger({server!r}, {TEST_KEY!r}, flush_interval=60)
        for i in range(3):
            logger.log({{"route": "exit.test", "tokens_out": i}})
        print("logged")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert sorted(r.tokens_out for r in rows(db)) == [0, 1, 2]
